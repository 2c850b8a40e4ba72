"""``scf-relay package``: the zip builder's parts on small trees, and one real build of the producer shim.

The real build runs pip (from the package registry) under Python 3.10 with the minimal requirement set,
then imports and calls the handler from the unzipped, read-only package in a fresh Python 3.10 that has no
tomli of its own, checking with ``-v`` that every one of our modules is loaded from its ``.pyc``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scf_relay import function_zips as packaging
from scf_relay.cli.app import app

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "cos_events"
runner = CliRunner()


# -- parts ------------------------------------------------------------------------------------------


def test_every_needed_distribution_is_pinned_in_pyproject_and_none_is_the_sdk_meta_package():
    pins = packaging.project_pins()
    assert "pydantic" not in pins and "python_version < '3.11'" in pins["tomli"]
    assert "scf-relay" not in pins
    for spec in packaging.FUNCTIONS.values():
        for name in spec.distributions(packaging.KNOWN_EXTRAS):
            assert packaging.normalize(name) in pins, name
            assert packaging.normalize(name) != "tencentcloud-sdk-python"
    shim = packaging.FUNCTIONS["producer_shim"]
    assert shim.distributions(()) == ["tomli"]
    assert "redis" in shim.distributions(("redis",)) and "cos-python-sdk-v5" not in shim.distributions(("cloud",))


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_a_source_only_dependency_becomes_a_pure_python_wheel(tmp_path):
    built = _wheel(
        tmp_path / "crcmod-1.7-cp310-cp310-linux_x86_64.whl",
        {
            "crcmod/__init__.py": b"from crcmod.crcmod import *\n",
            "crcmod/_crcfunext.cpython-310-x86_64-linux-gnu.so": b"\x7fELF",
            "crcmod-1.7.dist-info/WHEEL": b"Root-Is-Purelib: false\nTag: cp310-cp310-linux_x86_64\n",
            "crcmod-1.7.dist-info/METADATA": b"Name: crcmod\nVersion: 1.7\n",
            "crcmod-1.7.dist-info/RECORD": b"stale\n",
        },
    )
    out = tmp_path / "pure"
    out.mkdir()
    pure = packaging.purify_wheel(built, out)
    assert pure.name == "crcmod-1.7-py3-none-any.whl"
    with zipfile.ZipFile(pure) as archive:
        names = set(archive.namelist())
        assert not any(n.endswith(".so") for n in names) and "crcmod/__init__.py" in names
        wheel = archive.read("crcmod-1.7.dist-info/WHEEL").decode()
        assert "Tag: py3-none-any" in wheel and "Root-Is-Purelib: true" in wheel and "cp310" not in wheel
        records = archive.read("crcmod-1.7.dist-info/RECORD").decode().splitlines()
        for line in records[:-1]:
            name, digest, size = line.split(",")
            data = archive.read(name)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}" and int(size) == len(data)
        assert records[-1] == "crcmod-1.7.dist-info/RECORD,,"


def test_junk_goes_and_each_function_gets_only_its_packages_without_the_application_or_emulator(tmp_path):
    tree = tmp_path / "tree"
    for name in ("bin/dotenv", "lib/tests/test_x.py", "Crypto/SelfTest/t.py", "lib/core.pyi", "lib/core.py"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x = 1\n")
    for name in ("RECORD", "INSTALLER", "METADATA", "LICENSE"):
        (tree / "lib-1.0.dist-info" / name).parent.mkdir(exist_ok=True)
        (tree / "lib-1.0.dist-info" / name).write_text("x")
    packaging.strip_junk(tree)
    packaging.copy_our_code(tree, packaging.FUNCTIONS["consumer"].packages)
    files = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    assert {"lib/core.py", "lib-1.0.dist-info/METADATA", "lib-1.0.dist-info/LICENSE"} <= files
    assert not {"bin/dotenv", "lib/tests/test_x.py", "Crypto/SelfTest/t.py", "lib/core.pyi"} & files
    assert {"consumer/index.py", "relay_core/pipelines.toml", "moderation/local.py"} <= files
    assert any(f.startswith("jobqueue/queue/") and f.endswith(".lua") for f in files)
    assert not [f for f in files if f.startswith(("scf_relay/", "producer_shim/", "vendors/emulator/"))]
    assert not [f for f in files if "__pycache__" in f]
    shim = tmp_path / "shim"
    packaging.copy_our_code(shim, packaging.FUNCTIONS["producer_shim"].packages)
    shim_files = {p.relative_to(shim).as_posix() for p in shim.rglob("*") if p.is_file()}
    assert "producer_shim/index.py" in shim_files
    assert not [f for f in shim_files if f.startswith(("scf_relay/", "consumer/", "vendors/", "moderation/"))]


def test_the_zip_is_deterministic(tmp_path):
    tree = tmp_path / "tree"
    for name, text in {"b.py": "b = 2\n", "a/x.toml": "x = 1\n", "index.py": "i = 0\n"}.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    packaging.write_zip(tree, tmp_path / "one.zip")
    os.utime(tree / "b.py", (1_000_000, 1_000_000))
    packaging.write_zip(tree, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        assert archive.namelist() == ["a/x.toml", "b.py", "index.py"]
        assert {i.date_time for i in archive.infolist()} == {packaging.ZIP_DATE}


def test_bad_options_and_a_wrong_interpreter_fail_with_one_line(tmp_path):
    result = runner.invoke(app, ["package", "--out", str(tmp_path), "--with", "cloud,gpu", "--json"])
    assert result.exit_code == 2 and "gpu" in json.loads(result.stdout)["error"]
    with pytest.raises(packaging.PackagingError, match="--python"):
        packaging.find_python(str(tmp_path / "no-such-python"))


# -- one real build -----------------------------------------------------------------------------------
_UNREACHABLE = ("Could not find a version", "No matching distribution", "connection", "Temporary failure in name")


def _index_unreachable(output: str) -> bool:
    return any(sign.lower() in output.lower() for sign in _UNREACHABLE)


@pytest.fixture(scope="module")
def python310() -> str:
    """SCF's Python 3.10; without one these tests skip, saying why (README: requirements)."""
    try:
        return packaging.find_python()
    except packaging.PackagingError as exc:
        pytest.skip(f"packaging needs a Python 3.10 interpreter: {exc}")


@pytest.fixture(scope="module")
def shim_build(tmp_path_factory, python310):
    out = tmp_path_factory.mktemp("dist")
    args = ["package", "--out", str(out), "--only", "producer_shim", "--with", "", "--python", python310, "--json"]
    result = runner.invoke(app, args)
    if result.exit_code != 0 and "pip" in result.output and _index_unreachable(result.output):
        pytest.skip(f"packaging needs the package index, which did not answer: {result.output.strip()[-300:]}")
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)["packages"]
    return out, report


def test_the_shim_zip_holds_the_handler_and_bytecode_and_nothing_it_must_not(shim_build):
    out, report = shim_build
    assert report["function"] == "producer_shim" and report["handler"] == "index.main_handler"
    assert report["compiled"] and [r.split(">=")[0] for r in report["requirements"]] == ["tomli"]
    assert 0 < report["compressed_bytes"] < report["uncompressed_bytes"] < packaging.SCF_UNZIPPED_LIMIT_BYTES
    with zipfile.ZipFile(out / "producer_shim.zip") as archive:
        names = archive.namelist()
    assert names == sorted(names) and report["files"] == len(names)
    assert {"index.py", "producer_shim/index.py", "producer_shim/__pycache__/index.cpython-310.pyc"} <= set(names)
    assert "__pycache__/index.cpython-310.pyc" in names and "tomli/__init__.py" in names
    assert not [n for n in names if n.startswith(("pydantic", "annotated_types", "typing_extensions"))]
    assert not [n for n in names if n.startswith(("scf_relay/cli/", "scf_relay/demo/", "vendors/emulator/"))]
    assert not [n for n in names if re.match(r"tencentcloud_sdk_python-\d", n) or n.startswith("bin/")]
    assert not [n for n in names if n.endswith(".pyc") and ".cpython-310." not in n]
    print(f"producer_shim.zip (minimal): {report['compressed_bytes']} bytes, {report['uncompressed_bytes']} unzipped")


def test_the_build_is_reproducible(shim_build, python310, tmp_path):
    out, _ = shim_build
    options = packaging.BuildOptions(out_dir=tmp_path, functions=("producer_shim",), extras=(), python=python310)
    packaging.build(options)
    assert (tmp_path / "producer_shim.zip").read_bytes() == (out / "producer_shim.zip").read_bytes()


_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
import index
summary = index.main_handler(json.load(open(sys.argv[2], encoding="utf-8")), {"request_id": "zip"})
print(json.dumps({"enqueued": len(summary["enqueued"]), "tomli": sys.modules["tomli"].__file__,
                  "pydantic": "pydantic" in sys.modules}))
"""


def test_the_unzipped_read_only_package_runs_on_python_310_from_its_bytecode(shim_build, python310, tmp_path):
    out, _ = shim_build
    code = tmp_path / "var-user"
    with zipfile.ZipFile(out / "producer_shim.zip") as archive:
        archive.extractall(code)
    subprocess.run(["chmod", "-R", "a-w", str(code)], check=True)
    env = {"PATH": os.environ["PATH"], "RELAY_HOME": str(tmp_path / "relay"), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(
            [python310, "-I", "-v", "-c", _RUN, str(code), str(FIXTURES / "real_put.json")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(code)], check=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["enqueued"] == 1 and result["tomli"].startswith(str(code)) and not result["pydantic"]
    ours = re.findall(r"^import '((?:producer_shim|scf_relay|jobqueue)[\w.]*)'", proc.stderr, flags=re.M)
    pyc = rf"^# code object from '{re.escape(str(code))}/(\S+)\.cpython-310\.pyc'"
    from_pyc = set(re.findall(pyc, proc.stderr, flags=re.M))
    assert ours and "producer_shim.index" in ours
    for module in ours:
        parts = module.split(".")
        candidates = {"/".join([*parts[:-1], "__pycache__", parts[-1]]), "/".join([*parts, "__pycache__", "__init__"])}
        assert candidates & from_pyc, f"{module} was compiled from source"
