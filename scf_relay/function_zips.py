"""Build the SCF code packages: ``<out>/<function>.zip`` plus the same tree unzipped at ``<out>/<function>/``.

1. **Dependencies** (:data:`FUNCTIONS`, versions from ``pyproject.toml``): ``pip install --target --platform
   manylinux2014_x86_64 --implementation cp --python-version 3.10 --only-binary=:all:``, run by a *Python 3.10*
   because pip evaluates environment markers against the interpreter running it, not ``--python-version``
   (httpx's anyio needs ``exceptiongroup`` on 3.10 only). ``crcmod`` (imported by ``cos-python-sdk-v5``) exists
   only as source: it is built once and repackaged as a pure-Python wheel without its optional C extension.
2. **Our code**: only the packages the function imports (:attr:`FunctionSpec.packages`; never the application
   package ``scf_relay`` nor ``vendors/emulator``) as ``.py``, ``.toml``, ``.lua``, and a root ``index.py``
   re-exporting ``main_handler``: the SCF handler is ``index.main_handler``.
3. **No junk**: console scripts, ``__pycache__``, ``tests``/``SelfTest`` folders, ``.pyi`` stubs, install records.
4. **Bytecode**: SCF's code directory is read-only, so modules without ``.pyc`` compile on every cold start
   (docs/platform.md §1); ``compileall --invalidation-mode unchecked-hash`` writes ``.cpython-310.pyc`` files the
   runtime uses whatever mtimes the unzipped sources get.
5. **Deterministic zip**: sorted entries, fixed dates and modes, ``PYTHONHASHSEED=0`` while compiling.

Errors are :class:`PackagingError`, one line saying what failed and what to do.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCF_PYTHON = "3.10"
PLATFORM = "manylinux2014_x86_64"
SCF_UNZIPPED_LIMIT_BYTES = 500 * 1024 * 1024  # SCF: code package at most 500 MB before compression
KNOWN_EXTRAS = ("cloud", "redis")
DEFAULT_EXTRAS = KNOWN_EXTRAS  # the cloud deployment: CMQ queue, COS store, Tencent moderation, Redis ledger
PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXCLUDED_PACKAGES = ("vendors/emulator",)
OUR_FILE_SUFFIXES = (".py", ".toml", ".lua")
JUNK_DIR_NAMES = frozenset({"__pycache__", "tests", "SelfTest"})
DIST_INFO_JUNK = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
PURE_FALLBACKS = {"crcmod": "cos-python-sdk-v5"}  # source-only dependency -> the requirement that pulls it in
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
COMMAND_TIMEOUT_S = 900


class PackagingError(Exception):
    """A package could not be built; the message says what failed and what to do."""


@dataclass(frozen=True)
class FunctionSpec:
    """One SCF function: its handler module and the distributions it needs, always and per extra."""

    name: str
    handler_module: str
    packages: tuple[str, ...]  # our top-level packages it imports (a test checks this against the import graph)
    always: tuple[str, ...]
    cloud: tuple[str, ...]
    redis: tuple[str, ...] = ("redis",)

    def distributions(self, extras: Sequence[str]) -> list[str]:
        return list(dict.fromkeys([*self.always, *(name for extra in extras for name in getattr(self, extra))]))


_BASE = ("tomli",)  # pipelines.toml on Python 3.10 (the standard library's tomllib from 3.11)
_SDK = "tencentcloud-sdk-python-"  # one service per distribution, never the all-services meta package
FUNCTIONS: dict[str, FunctionSpec] = {
    # the shim's cmq:// queue speaks HTTP through httpx; its nudge is an SCF API 3.0 call
    "producer_shim": FunctionSpec(
        "producer_shim",
        "producer_shim.index",
        ("relay_core", "tencent_plumbing", "jobqueue", "objectstore", "producer_shim"),
        _BASE,
        ("httpx", _SDK + "common", _SDK + "scf"),
    ),
    "consumer": FunctionSpec(
        "consumer",
        "consumer.index",
        ("relay_core", "tencent_plumbing", "jobqueue", "objectstore", "vendors", "moderation", "consumer"),
        (*_BASE, "httpx", "backoff"),
        ("cos-python-sdk-v5", _SDK + "common", _SDK + "ims", _SDK + "vm"),
    ),
    # the webhook entry: ledger (Redis) + queue (CMQ over httpx); no vendor, store or moderation client
    "webhook": FunctionSpec(
        "webhook",
        "webhook_entry.index",
        ("relay_core", "tencent_plumbing", "jobqueue", "webhook_entry"),
        _BASE,
        ("httpx",),
    ),
}


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path = Path("dist/scf")
    functions: tuple[str, ...] = tuple(FUNCTIONS)
    extras: tuple[str, ...] = DEFAULT_EXTRAS
    compile: bool = True
    pip_args: tuple[str, ...] = ()
    offline_wheels: Path | None = None
    python: str | None = None  # a Python 3.10 interpreter; found on PATH or under pyenv when None
    pipelines: Path | None = None  # a pipelines.toml shipped instead of the packaged one (checked first)


@dataclass
class BuildReport:
    function: str
    handler: str
    zip_path: str
    tree_path: str
    compressed_bytes: int
    uncompressed_bytes: int
    files: int
    compiled: bool
    python: str
    requirements: list[str]
    biggest: list[dict[str, int | str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# -- the build ------------------------------------------------------------------------------------


def build(options: BuildOptions, progress: Callable[[str], None] = lambda _: None) -> list[BuildReport]:
    """Build every function in ``options.functions``; returns one report per zip."""
    unknown = sorted(set(options.functions) - set(FUNCTIONS))
    bad_extras = sorted(set(options.extras) - set(KNOWN_EXTRAS))
    if unknown or bad_extras:
        raise PackagingError(
            f"unknown function(s) {unknown} or extra(s) {bad_extras}; known: "
            f"{sorted(FUNCTIONS)} and {list(KNOWN_EXTRAS)}"
        )
    if options.pipelines is not None:
        check_pipelines(options.pipelines)
    python = find_python(options.python)
    pins = project_pins()
    options.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scf-relay-package-") as work:
        wheels = Path(work)
        return [_build_function(FUNCTIONS[name], options, python, pins, wheels, progress) for name in options.functions]


def _build_function(
    spec: FunctionSpec,
    options: BuildOptions,
    python: str,
    pins: dict[str, str],
    wheels: Path,
    progress: Callable[[str], None],
) -> BuildReport:
    tree = options.out_dir / spec.name
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    requirements = [_pinned(name, pins) for name in spec.distributions(options.extras)]
    progress(f"{spec.name}: installing {len(requirements)} requirement(s) for CPython {SCF_PYTHON} {PLATFORM}")
    index_args = ["--no-index", "--find-links", str(options.offline_wheels)] if options.offline_wheels else []
    fallbacks = [name for name, needer in PURE_FALLBACKS.items() if needer in spec.distributions(options.extras)]
    for name in fallbacks:
        if not any(wheels.glob(f"{name}-*.whl")):
            _build_pure_wheel(python, name, wheels, index_args)
    links = ["--find-links", str(wheels)] if fallbacks else []
    _pip_install(python, tree, requirements, [*index_args, *links, *options.pip_args])
    strip_junk(tree)
    copy_our_code(tree, spec.packages)
    if options.pipelines is not None:
        install_pipelines(tree, options.pipelines)
    write_entry(tree, spec)
    if options.compile:
        progress(f"{spec.name}: compiling bytecode with {python}")
        compile_tree(python, tree)
    zip_path = options.out_dir / f"{spec.name}.zip"
    write_zip(tree, zip_path)
    total, files, biggest = _sizes(tree)
    if total > SCF_UNZIPPED_LIMIT_BYTES:
        raise PackagingError(f"{zip_path}: {total} bytes unzipped, over SCF's 500 MB limit")
    return BuildReport(
        function=spec.name,
        handler="index.main_handler",
        zip_path=str(zip_path),
        tree_path=str(tree),
        compressed_bytes=zip_path.stat().st_size,
        uncompressed_bytes=total,
        files=files,
        compiled=options.compile,
        python=python,
        requirements=requirements,
        biggest=biggest,
    )


# -- requirements ---------------------------------------------------------------------------------


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_pins(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> dict[str, str]:
    """``{normalized name: requirement string}`` from ``[project]`` dependencies and optional dependencies."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10
        import tomli as tomllib
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    except (OSError, KeyError, ValueError) as exc:
        raise PackagingError(f"cannot read the pins in {pyproject} ({exc}); run from a source checkout") from None
    requirements = [*project.get("dependencies", [])]
    for group in project.get("optional-dependencies", {}).values():
        requirements += group
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if match and normalize(match.group(1)) != normalize(project.get("name", "")):
            pins.setdefault(normalize(match.group(1)), requirement.strip())
    return pins


def _pinned(name: str, pins: dict[str, str]) -> str:
    try:
        return pins[normalize(name)]
    except KeyError:
        raise PackagingError(f"pyproject.toml pins no {name!r}: add it to [project] dependencies") from None


# -- interpreters and pip -------------------------------------------------------------------------


def find_python(explicit: str | None = None) -> str:
    """A Python 3.10 interpreter: ``explicit``, this one, ``python3.10`` on PATH, or a pyenv 3.10.x."""
    if explicit:
        candidates: list[str] = [explicit]
    else:
        pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        candidates = [sys.executable, shutil.which("python3.10") or ""]
        candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{SCF_PYTHON}.*/bin/python{SCF_PYTHON}"))]
    for candidate in filter(None, candidates):
        if python_version(candidate) == SCF_PYTHON:
            return candidate
    raise PackagingError(
        f"no Python {SCF_PYTHON} interpreter found (tried {', '.join(filter(None, candidates))}): pip must run "
        f"under SCF's Python {SCF_PYTHON} to pick the right dependencies; pass --python /path/to/python3.10"
    )


def python_version(python: str) -> str | None:
    """``"3.10"`` for a working interpreter, ``None`` when it does not run."""
    try:
        probe = [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    environment = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=environment)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PackagingError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = " | ".join(line.strip() for line in (done.stderr or done.stdout).strip().splitlines()[-6:])
        raise PackagingError(f"{what} failed (exit {done.returncode}): {tail}")


def _pip_install(python: str, target: Path, requirements: list[str], extra_args: list[str]) -> None:
    command = [python, "-m", "pip", "install", "--target", str(target), "--no-compile", "--no-warn-script-location"]
    command += ["--platform", PLATFORM, "--implementation", "cp", "--python-version", SCF_PYTHON]
    _run([*command, "--only-binary=:all:", *extra_args, *requirements], "pip install")


def _build_pure_wheel(python: str, name: str, wheels: Path, index_args: list[str]) -> None:
    """Build ``name`` from source (or take a wheel) and store it as a ``py3-none-any`` wheel in ``wheels``."""
    with tempfile.TemporaryDirectory(prefix="scf-relay-wheel-") as scratch:
        _run(
            [python, "-m", "pip", "wheel", "--use-pep517", "--no-deps", "-w", scratch, *index_args, name],
            f"building {name}",
        )
        for built in Path(scratch).glob("*.whl"):
            purify_wheel(built, wheels)


def purify_wheel(wheel: Path, out_dir: Path) -> Path:
    """Copy ``wheel`` without compiled extensions, tagged ``py3-none-any``, with a RECORD that matches."""
    name, version = wheel.name.split("-")[:2]
    pure = out_dir / f"{name}-{version}-py3-none-any.whl"
    records: list[str] = []
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(pure, "w", zipfile.ZIP_DEFLATED) as target:
        members = [i for i in source.infolist() if not i.is_dir() and not i.filename.endswith((".so", ".pyd"))]
        record_name = next(i.filename for i in members if i.filename.endswith(".dist-info/RECORD"))
        for info in members:
            if info.filename == record_name:
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/WHEEL"):
                data = _pure_wheel_metadata(data.decode()).encode()
            target.writestr(info.filename, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{info.filename},sha256={digest},{len(data)}")
        target.writestr(record_name, "\n".join([*records, f"{record_name},,"]) + "\n")
    return pure


def _pure_wheel_metadata(text: str) -> str:
    kept = [line for line in text.splitlines() if not line.startswith(("Tag:", "Root-Is-Purelib:"))]
    return "\n".join([*kept, "Root-Is-Purelib: true", "Tag: py3-none-any"]) + "\n"


# -- the tree -------------------------------------------------------------------------------------


def strip_junk(tree: Path) -> None:
    """Remove what the functions never load: scripts, caches, test suites, stubs, install records."""
    shutil.rmtree(tree / "bin", ignore_errors=True)
    for path in sorted(tree.rglob("*"), reverse=True):  # children before their folders
        if path.is_dir() and path.name in JUNK_DIR_NAMES:
            shutil.rmtree(path)
        elif path.is_file() and (
            path.suffix in (".pyi", ".pyc") or (path.parent.name.endswith(".dist-info") and path.name in DIST_INFO_JUNK)
        ):
            path.unlink()


def copy_our_code(tree: Path, packages: Sequence[str], root: Path = PROJECT_ROOT) -> None:
    """Copy the function's packages (``.py``/``.toml``/``.lua``), leaving out the emulator."""
    for package in packages:
        for source in sorted((root / package).rglob("*")):
            relative = source.relative_to(root).as_posix()
            if (
                not source.is_file()
                or source.suffix not in OUR_FILE_SUFFIXES
                or "__pycache__" in source.parts
                or any(relative == ex or relative.startswith(ex + "/") for ex in EXCLUDED_PACKAGES)
            ):
                continue
            destination = tree / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


def check_pipelines(path: Path) -> None:
    """Refuse a pipelines file that does not load (PackagingError with the loader's one-line reason)."""
    from relay_core.pipelines import load_pipelines

    try:
        load_pipelines(path)
    except Exception as exc:  # noqa: BLE001 - ConfigError or OSError: either way the build must stop
        raise PackagingError(f"--pipelines {path}: {str(exc).splitlines()[0]}") from None


def install_pipelines(tree: Path, path: Path) -> None:
    """Ship ``path`` as the package's ``relay_core/pipelines.toml``, so the function needs no RELAY_PIPELINES."""
    destination = tree / "relay_core" / "pipelines.toml"
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, destination)


def write_entry(tree: Path, spec: FunctionSpec) -> None:
    (tree / "index.py").write_text(
        f'"""SCF entry of {spec.name}, written by `scf-relay package`: handler ``index.main_handler``."""\n\n'
        f"from {spec.handler_module} import main_handler\n\n"
        '__all__ = ["main_handler"]\n',
        encoding="utf-8",
    )


def compile_tree(python: str, tree: Path) -> None:
    """``__pycache__/*.cpython-310.pyc`` for every module, valid whatever the sources' mtimes (unchecked hash)."""
    root = str(tree.resolve())
    command = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    _run([*command, "-s", root, root], "compileall", env={"PYTHONHASHSEED": "0"})


def write_zip(tree: Path, zip_path: Path) -> None:
    """Zip ``tree`` deterministically (sorted entries, fixed dates and modes), replacing ``zip_path``."""
    partial = zip_path.with_suffix(".zip.partial")
    files = sorted((p.relative_to(tree).as_posix(), p) for p in tree.rglob("*") if p.is_file())
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode below is honoured
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    partial.replace(zip_path)


def _sizes(tree: Path) -> tuple[int, int, list[dict[str, int | str]]]:
    """(bytes, files, the 8 biggest top-level entries) of ``tree``; all ``*.dist-info`` count as one entry."""
    by_top: dict[str, int] = {}
    files = [path for path in tree.rglob("*") if path.is_file()]
    for path in files:
        top = path.relative_to(tree).parts[0]
        key = "(dist-info)" if top.endswith(".dist-info") else top
        by_top[key] = by_top.get(key, 0) + path.stat().st_size
    biggest = sorted(by_top.items(), key=lambda item: (-item[1], item[0]))[:8]
    return sum(by_top.values()), len(files), [{"name": name, "bytes": size} for name, size in biggest]
