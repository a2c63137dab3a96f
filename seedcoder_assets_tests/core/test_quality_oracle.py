"""The oracle client against a local OpenAI-compatible server that injects faults."""

import pytest

from seedcoder_assets.core.quality.oracle import OracleSettings, check_reachable, label
from seedcoder_assets.testing.fake_oracle import FakeOracle, Faults, heuristic_rating

CODE = [f"# helper {i}\ndef f{i}(x):\n    '''Add {i}.'''\n    return x + {i}\n" for i in range(120)]


def _prompts():
    return [(str(i), f"Python code to be assessed:\n{c}.\n") for i, c in enumerate(CODE)]


def _settings(server: FakeOracle, **kw) -> OracleSettings:
    return OracleSettings(server.base_url, "judge", **{"timeout_s": 1.0, "max_concurrency": 8, "backoff_s": 0.01,
                                                       "max_retries": 4, **kw})


def test_every_fault_is_retried_into_an_answer() -> None:
    faults = Faults(p_500=0.3, p_drop=0.2, p_torn=0.2, p_delay=0.1, delay_s=2.0, transient_attempts=2)
    with FakeOracle(faults, model="judge") as server:
        replies = {}
        stats = label(_settings(server), _prompts(), lambda k, r: replies.__setitem__(k, r))
    assert stats.statuses == {"ok": len(CODE)} and stats.retries > 0
    assert all(replies[str(i)].rating == heuristic_rating(c) for i, c in enumerate(CODE))


def test_unparseable_answers_are_kept_verbatim_and_not_retried() -> None:
    with FakeOracle(Faults(p_unparseable=0.3), model="judge") as server:
        replies = {}
        stats = label(_settings(server), _prompts(), lambda k, r: replies.__setitem__(k, r))
        assert server.state.requests == len(CODE)  # temperature 0: asking again gives the same reply
    failures = [r for r in replies.values() if r.status == "parse_failure"]
    assert failures and stats.statuses["parse_failure"] == len(failures)
    assert all(r.rating is None and "eight out of ten" in r.raw for r in failures)


def test_a_dead_server_stops_the_run_early_instead_of_retrying_everything() -> None:
    with FakeOracle(Faults(down=True), model="judge") as server:
        replies = {}
        stats = label(_settings(server, max_retries=1, outage_window=10), _prompts(),
                      lambda k, r: replies.__setitem__(k, r))
        assert server.state.requests < 40
    assert stats.aborted and "HTTP 503" in stats.aborted
    assert stats.not_asked == len(CODE) - stats.asked and all(r.status == "error" for r in replies.values())


def test_a_server_failing_most_requests_trips_the_cut_off() -> None:
    """90% of requests fail: most files still get an answer after 5 retries, which a count of failed
    files in a row never notices; the share of failed requests does."""
    with FakeOracle(Faults(p_request_500=0.9), model="judge") as server:
        stats = label(_settings(server, max_retries=5, outage_window=40), _prompts(), lambda k, r: None)
    assert stats.aborted and "failed on the server's side" in stats.aborted and stats.not_asked > 0


def test_a_flaky_server_is_not_an_outage() -> None:
    with FakeOracle(Faults(p_request_500=0.3), model="judge") as server:
        stats = label(_settings(server, max_retries=6, outage_window=40), _prompts(), lambda k, r: None)
    assert not stats.aborted and stats.statuses["ok"] >= len(CODE) - 2


def test_refused_prompts_are_their_own_errors_not_an_outage() -> None:
    """A prompt over the server's context length is answered 400 every time: an error for that file,
    never a reason to stop asking about the others."""
    with FakeOracle(Faults(p_too_long=0.7), model="judge") as server:
        replies = {}
        stats = label(_settings(server, outage_window=10), _prompts(), lambda k, r: replies.__setitem__(k, r))
    assert not stats.aborted and stats.not_asked == 0
    refused = [r for r in replies.values() if r.status == "error"]
    assert refused and all("HTTP 400" in r.error and r.attempts == 1 for r in refused)
    assert stats.statuses["ok"] == len(CODE) - len(refused)


def test_a_bug_of_ours_is_not_retried_as_a_bad_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from seedcoder_assets.core.quality import oracle

    def broken(text: str):  # a TypeError in our own parsing code, after a good answer
        raise TypeError("our bug")

    monkeypatch.setattr(oracle, "parse_rating", broken)
    with FakeOracle(model="judge") as server, pytest.raises(TypeError, match="our bug"):
        label(_settings(server), _prompts()[:2], lambda k, r: None)


def test_client_errors_are_not_retried() -> None:
    with FakeOracle(model="judge") as server:
        settings = OracleSettings(server.base_url.replace("/v1", "/nope"), "judge", backoff_s=0.01)
        replies = {}
        label(settings, _prompts()[:3], lambda k, r: replies.__setitem__(k, r))
        assert server.state.requests == 0
    assert all(r.status == "error" and r.attempts == 1 and "HTTP 404" in r.error for r in replies.values())


def test_requests_run_concurrently() -> None:
    with FakeOracle(Faults(latency_s=0.2), model="judge") as server:
        stats = label(_settings(server, max_concurrency=32), _prompts()[:64], lambda k, r: None)
    assert stats.seconds < 64 * 0.2 / 8  # one at a time would take 12.8 s


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_both_openai_endpoints(api: str) -> None:
    with FakeOracle(model="judge") as server:
        replies = {}
        label(_settings(server, api=api), _prompts()[:5], lambda k, r: replies.__setitem__(k, r))
    assert {r.status for r in replies.values()} == {"ok"}


def test_reachability_and_the_key_never_shows() -> None:
    with FakeOracle(model="judge") as server:
        assert check_reachable(_settings(server)) is None
        assert "serves ['judge']" in check_reachable(OracleSettings(server.base_url, "other"))
    assert "cannot reach" in check_reachable(OracleSettings("http://127.0.0.1:9/v1", "judge"), timeout_s=1)
    assert "sk-secret" not in repr(OracleSettings("http://x/v1", "m", api_key="sk-secret"))
