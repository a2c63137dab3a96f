"""Build a real crawl from PyPI source distributions: archives + `repos.jsonl`.

Nothing third-party is committed: the archives are fetched at run time from the package index
(PyPI's JSON simple API), checked against the index's sha256, cached, and laid out as a crawl.
A project with several versions and projects that vendor others (pip vendors requests, urllib3,
idna, packaging...) give real exact and near duplicates.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from seedcoder_assets import settings

INDEX_URL = "https://pypi.org/simple"
CUTOFF = "2026-06-01"  # newest sdist uploaded before this date: the crawl is reproducible

# (project, how many most recent versions before the cutoff, or explicit versions)
SMALL: list[tuple[str, int | tuple[str, ...]]] = [
    ("requests", ("2.31.0", "2.32.3")), ("urllib3", ("2.2.1", "2.2.2")), ("idna", ("3.6", "3.7")),
    ("six", ("1.16.0", "1.17.0")), ("packaging", ("24.0", "24.1")), ("pip", ("24.0",)),
    ("attrs", ("23.2.0",)), ("click", ("8.1.7",)), ("itsdangerous", ("2.2.0",)),
    ("markupsafe", ("2.1.5", "3.0.2")), ("pyyaml", ("6.0.1",)), ("simplejson", ("3.19.2",)),
    ("msgpack", ("1.0.8",)), ("wrapt", ("1.16.0",)), ("ujson", ("5.10.0",)), ("coverage", ("7.5.1",)),
    ("toolz", ("0.12.1",)), ("colorama", ("0.4.6",)), ("jinja2", ("3.1.4",)), ("certifi", ("2024.2.2",)),
]

# ~200 projects over many languages (C, C++, Cython, Fortran, Rust, JS/TS, HTML, CSS, Shell...).
LARGE_PROJECTS = """
numpy scipy pandas matplotlib grpcio pyarrow django bokeh plotly jupyterlab notebook sphinx tornado twisted
sqlalchemy cython lxml pillow cryptography pydantic-core orjson tokenizers scikit-learn statsmodels
networkx sympy h5py numba llvmlite pyzmq psutil greenlet gevent uvloop aiohttp yarl multidict frozenlist
regex pycryptodome cffi pynacl bcrypt zstandard brotli lz4 xxhash mmh3 pyrsistent ruamel.yaml pyyaml
markupsafe simplejson msgpack ujson wrapt coverage rpds-py jiter watchfiles pydantic fastapi starlette
flask werkzeug jinja2 click requests urllib3 httpx httpcore h11 anyio sniffio idna charset-normalizer
certifi attrs packaging pip setuptools wheel six toolz cytoolz more-itertools boto3 botocore s3transfer
jmespath docutils pygments babel mistune markdown bleach html5lib beautifulsoup4 soupsieve cssselect
tinycss2 webencodings pyparsing python-dateutil pytz tzdata arrow pendulum dateparser isodate
rich textual prompt-toolkit urwid tqdm colorama termcolor tabulate pyfiglet typer fire docopt
pytest pluggy iniconfig hypothesis mock freezegun responses tox virtualenv nox black isort flake8
pycodestyle pyflakes mccabe pylint astroid mypy mypy-extensions typing-extensions jedi parso
ipython traitlets jupyter-core jupyter-client ipykernel nbformat nbconvert jsonschema referencing
pandocfilters defusedxml paramiko fabric invoke celery kombu redis pymongo psycopg2 pymysql asyncpg
peewee alembic mako dill cloudpickle joblib threadpoolctl networkx-temporal graphviz pydot
shapely pyproj fiona rasterio netcdf4 cftime xarray dask distributed partd locket fsspec s3fs
gcsfs protobuf grpcio-tools thrift avro fastavro pyasn1 rsa oauthlib requests-oauthlib google-auth
cachetools itsdangerous blinker wtforms flask-login gunicorn uvicorn waitress hypercorn websockets
wsproto h2 hpack hyperframe brotlicffi pycparser ply sly lark antlr4-python3-runtime
""".split()

LARGE: list[tuple[str, int | tuple[str, ...]]] = [(p, 1) for p in LARGE_PROJECTS] + [
    ("requests", 4), ("urllib3", 3), ("numpy", 2), ("django", 2), ("flask", 3), ("click", 3),
]


@dataclass(frozen=True)
class Sdist:
    project: str
    version: str
    filename: str
    url: str
    sha256: str
    upload_time: str
    size: int


def _get_json(url: str) -> dict:
    req = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def _version_of(project: str, filename: str) -> str | None:
    stem = filename
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        return None
    norm = project.replace("-", "_").replace(".", "_").lower()
    head, _, version = stem.rpartition("-")
    return version if head.replace("-", "_").replace(".", "_").lower() == norm else None


def list_sdists(project: str, index_url: str = INDEX_URL, cutoff: str = CUTOFF) -> list[Sdist]:
    """Source distributions of a project uploaded before `cutoff`, oldest first."""
    files = _get_json(f"{index_url}/{project}/")["files"]
    out = []
    for f in files:
        version = _version_of(project, f["filename"])
        if version is None or f.get("yanked") or (f.get("upload-time") or "") >= cutoff:
            continue
        if any(tag in version for tag in ("a", "b", "rc", "dev")) and not version.replace(".", "").isdigit():
            continue  # pre-releases are not what a crawler of released code would pick
        out.append(Sdist(project, version, f["filename"], f["url"], f["hashes"]["sha256"],
                         f.get("upload-time", ""), int(f.get("size") or 0)))
    out.sort(key=lambda s: s.upload_time)
    return out


def pick(project: str, want: int | tuple[str, ...], index_url: str = INDEX_URL) -> list[Sdist]:
    sdists = list_sdists(project, index_url)
    if isinstance(want, int):
        by_version: dict[str, Sdist] = {}
        for s in sdists:  # one archive per version (some versions have .zip and .tar.gz)
            by_version.setdefault(s.version, s)
        return list(by_version.values())[-want:]
    chosen = [next((s for s in sdists if s.version == v), None) for v in want]
    missing = [v for v, s in zip(want, chosen) if s is None]
    if missing:
        raise LookupError(f"{project}: no sdist for versions {missing} before {CUTOFF}")
    return [s for s in chosen if s is not None]


def fetch(sdist: Sdist, cache: Path) -> Path:
    """Download once into the cache, verified against the index's sha256."""
    dest = cache / sdist.filename
    if dest.exists() and hashlib.sha256(dest.read_bytes()).hexdigest() == sdist.sha256:
        return dest
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(sdist.url, timeout=300) as resp, open(tmp, "wb") as out:
        shutil.copyfileobj(resp, out)
    if hashlib.sha256(tmp.read_bytes()).hexdigest() != sdist.sha256:
        tmp.unlink()
        raise OSError(f"sha256 mismatch for {sdist.filename}")
    tmp.replace(dest)
    return dest


def build_crawl(dest: Path, which: str | list[tuple[str, int | tuple[str, ...]]] = "small",
                cache: Path | None = None, index_url: str = INDEX_URL, workers: int = 8) -> Path:
    """Write a crawl folder: the sdist archives plus `repos.jsonl`. Returns the folder.

    Args:
        dest: the crawl folder to create.
        which: "small", "large", or an explicit list of (project, versions or count).
    """
    spec = {"small": SMALL, "large": LARGE}[which] if isinstance(which, str) else which
    cache = cache or Path(settings.current().sdist_cache)
    cache.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    with cf.ThreadPoolExecutor(workers) as pool:
        picked = [s for group in pool.map(lambda pw: _pick_or_skip(*pw, index_url), spec) for s in group]
        unique = list({s.filename: s for s in picked}.values())
        paths = list(pool.map(lambda s: fetch(s, cache), unique))
    lines = []
    for s, path in zip(unique, paths):
        target = dest / s.filename
        if not target.exists():
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
        lines.append({"name": f"pypi/{s.project}-{s.version}", "archive": s.filename,
                      "created_at": s.upload_time, "pushed_at": s.upload_time, "source": s.url})
    (dest / "repos.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return dest


def _pick_or_skip(project: str, want: int | tuple[str, ...], index_url: str) -> list[Sdist]:
    try:
        return pick(project, want, index_url)
    except Exception as exc:  # the large crawl tolerates a project without a usable sdist
        if isinstance(want, tuple):
            raise
        print(f"skip {project}: {exc}")
        return []
