"""Which commits become code-change samples. The paper names no commit filters; these follow CommitPack
and CommitPackFT (Muennighoff et al., 2023), StarCoder's GitHub-commits filtering and bigcode's bot
lists, each rule with the reason it exists. A commit gets the first reason that applies, in the order
of `commit_rejection`, so its lineage row names one cause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel

from seedcoder_assets.core.commits.history import SHALLOW, Commit, FileChange
from seedcoder_assets.core.languages import language_of


class CommitFilters(BaseModel, frozen=True):
    max_files: int = 20  # more changed files than this: a mass rename, reformat or vendoring, not one change
    max_patch_bytes: int = 64_000  # a larger diff does not fit a sample's target next to its context
    min_message_words: int = 2  # "fix", "wip": a one-word message states no intent to learn from


# Bots write commits no person decided (dependency bumps, formatting, translations): bigcode's list of
# bot accounts plus GitHub's `[bot]` suffix convention.
BOT = re.compile(r"(?i)(\[bot\]|^(dependabot|renovate|greenkeeper|snyk-bot|pyup-bot|imgbot|allcontributors|"
                 r"github-actions|pre-commit-ci|codecov|mergify|semantic-release-bot|whitesource|depfu|"
                 r"deepsource-autofix|restyled-io|gitter-badger|transifex|weblate|travis ?ci|appveyor)\b)")
# Messages that say nothing about the change (GitHub's web-editor defaults among them): CommitPackFT
# drops them because the message is the instruction the model learns from.
BOILERPLATE = re.compile(r"(?i)^\s*(wip|update|updates|updated|fix|fixes|fixed|changes|minor|cleanup|misc|"
                         r"initial commit|first commit|init|commit|test|tests|typo|\.+|-+|"
                         r"(update|create|delete|add|rename) \S*[./]\S*|add files via upload)\s*[.!]*\s*$")
# Release chores: the diff is a version string; nothing to predict from the message.
VERSION_BUMP = re.compile(r"(?i)^\s*(bump(ed)?\b.*\b(version|to \d|v\d)|(prepare|preparing)? ?(pre-?)?release\b|"
                          r"version bump|v?\d+\.\d+(\.\d+)*(-?\w+)?\s*$|release v?\d)")
LOCKFILES = frozenset({"package-lock.json", "yarn.lock", "pnpm-lock.yaml", "npm-shrinkwrap.json", "cargo.lock",
                       "poetry.lock", "pipfile.lock", "uv.lock", "pdm.lock", "go.sum", "composer.lock",
                       "gemfile.lock", "podfile.lock", "packages.lock.json", "flake.lock"})
VENDORED = re.compile(r"(^|/)(vendor|vendored|third[_-]?party|node_modules|bower_components|_vendor|external)/")
GENERATED = re.compile(r"(_pb2(_grpc)?\.py|\.pb\.(go|cc|h)|_generated\.\w+|\.generated\.\w+|(^|/)dist/|"
                       r"(^|/)gen/|\.designer\.cs)$|(^|/)(dist|build)/")
MINIFIED = re.compile(r"\.min\.(js|css)$|-min\.js$")
# Languages that are prose or data, not code, for "no code file changed" (docs-only commits).
NOT_CODE = frozenset({"Markdown", "reStructuredText", "Text", "JSON", "YAML", "TOML", "INI", "CSV", "XML"})


def file_kind(change: FileChange) -> str:
    """binary | lockfile | vendored | generated | minified | code | other."""
    path = change.path
    if change.binary:
        return "binary"
    if path.rsplit("/", 1)[-1].lower() in LOCKFILES:
        return "lockfile"
    if VENDORED.search(path):
        return "vendored"
    if GENERATED.search(path):
        return "generated"
    if MINIFIED.search(path):
        return "minified"
    language = language_of(path)
    return "code" if language is not None and language not in NOT_CODE else "other"


def _only(kinds: Sequence[str]) -> str | None:
    """The reason for a commit that changes no code file."""
    if "code" in kinds:
        return None
    single = set(kinds)
    if len(single) == 1 and (kind := single.pop()) != "other":
        return f"{kind}_only"
    return "no_code_file"


def commit_rejection(commit: Commit, rule: CommitFilters) -> str | None:
    """None to keep the commit, else its one reason."""
    if commit.is_merge:
        return "merge"  # a merge's diff is other commits' work, already kept as those commits
    if commit.damage == SHALLOW:
        return "shallow_boundary"  # a shallow clone cut its parents off: its diff against them is unknown
    if commit.damage is not None:
        return "missing_object"  # the diff needs an object the crawl lacks (a corrupt or partial clone)
    if BOT.search(commit.author) or BOT.search(commit.author_email.split("@")[0]):
        return "bot_author"
    if not commit.message_decodes:
        return "undecodable_message"
    subject = commit.message.strip().split("\n", 1)[0]
    if not subject:
        return "empty_message"
    if VERSION_BUMP.match(subject):
        return "version_bump"
    if BOILERPLATE.match(subject) or len(subject.split()) < rule.min_message_words:
        return "boilerplate_message"
    if not commit.files:
        return "no_change"  # an empty commit (a re-run trigger, a signed-off placeholder)
    if len(commit.files) > rule.max_files:
        return "too_many_files"
    if any(not p.isprintable() for f in commit.files for p in (f.path, f.old_path) if p):
        return "undecodable_path"  # not UTF-8 (or a control character): the sample could not name it
    if any(f.oversized for f in commit.files):
        return "file_too_large"  # a side of a file over the history reader's limit: no patch was built
    if sum(len(f.patch.encode()) for f in commit.files) > rule.max_patch_bytes:
        return "patch_too_large"
    return _only([file_kind(f) for f in commit.files])
