"""The layers import only inward: codec <- provider <- esme <- testing, and gateway on top.

Every ``import`` statement of every module is read (lazy ones inside functions included), so a
layer cannot reach outward even on a path the tests do not run. A fresh interpreter then shows
what importing each library layer really loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "smppgw"
STDLIB = sys.stdlib_module_names

# What each layer may import besides the standard library and itself.
ALLOWED: dict[str, set[str]] = {
    "codec": set(),
    "provider": {"smppgw.codec"},
    "esme": {"smppgw.codec", "smppgw.provider"},
    "testing": {"smppgw.codec", "smppgw.provider", "smppgw.esme", "trustme"},
    "gateway": {"*"},
}
THIRD_PARTY = ("msgspec", "prometheus_client", "uvloop", "trustme", "asyncpg", "rich")


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0]


def imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module under ``root``."""
    package = ".".join(("smppgw", *path.relative_to(root).with_suffix("").parts[:-1]))
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def allowed(layer: str, module: str) -> bool:
    rules = ALLOWED[layer]
    top = module.split(".", maxsplit=1)[0]
    if "*" in rules or top in STDLIB or top == "__future__":
        return True
    if module == "smppgw" or module.startswith(f"smppgw.{layer}"):
        return True
    return any(module == rule or module.startswith(f"{rule}.") for rule in rules)


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if len(p.relative_to(PACKAGE).parts) > 1)


def test_every_module_belongs_to_a_layer() -> None:
    assert {layer_of(p) for p in modules()} <= set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_standard_library_and_the_layers_beneath(layer: str) -> None:
    outward = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in modules()
        if layer_of(path) == layer
        for line, module in imports(path)
        if not allowed(layer, module)
    ]
    assert outward == []


def test_the_boundary_check_sees_a_lazy_outward_import(tmp_path: Path) -> None:
    module = tmp_path / "smppgw" / "esme" / "x.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from smppgw.gateway import config\n    import msgspec\n")
    found = [name for _, name in imports(module, tmp_path / "smppgw")]
    assert found == ["smppgw.gateway", "msgspec"]
    assert not allowed("esme", "smppgw.gateway")
    assert not allowed("esme", "msgspec")
    assert allowed("esme", "smppgw.codec.pdu")
    assert allowed("esme", "asyncio")


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("smppgw.codec", ("asyncio", "smppgw.esme", "smppgw.gateway", *THIRD_PARTY)),
        (
            "smppgw.provider",
            ("asyncio", "smppgw.esme", "smppgw.gateway", "smppgw.testing", *THIRD_PARTY),
        ),
        ("smppgw.esme", ("smppgw.gateway", "smppgw.testing", *THIRD_PARTY)),
        ("smppgw.testing", ("smppgw.gateway", "msgspec", "prometheus_client", "uvloop")),
    ],
)
def test_importing_a_library_layer_loads_nothing_beyond_it(
    layer: str, forbidden: tuple[str, ...]
) -> None:
    submodules = sorted(
        ".".join(("smppgw", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] == layer.split(".")[1] and p.name != "__main__.py"
    )
    code = (
        "import importlib, json, sys\n"
        f"for name in {submodules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(  # noqa: S603 - this interpreter, fixed code
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert [m for m in loaded if m.split(".")[0] in forbidden or m in forbidden] == []


def test_pip_install_smppgw_gives_the_codec_and_the_esme_library_and_nothing_else(
    tmp_path: Path,
) -> None:
    """A wheel of the project installed with no extras into a fresh virtual environment pulls
    in no other distribution, and its library layers import and work there."""
    root = PACKAGE.parent
    wheels = tmp_path / "wheels"
    subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
    python = venv / "bin" / "python"
    subprocess.run(  # noqa: S603 - the new environment, a local wheel only
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheels),
            "smppgw",
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import importlib.metadata as m, json\n"
        "from smppgw.codec import SubmitSm, decode, encode\n"
        "from smppgw.esme.binds import BindManager\n"
        "from smppgw.esme.session import Session\n"
        "from smppgw.provider import dlt_tlvs\n"
        "pdu = SubmitSm(sequence_number=7, destination_addr='14155550101', short_message=b'hi')\n"
        "assert decode(encode(pdu)) == pdu\n"
        "print(json.dumps(sorted(d.metadata['Name'] for d in m.distributions())))"
    )
    result = subprocess.run(  # noqa: S603 - the new environment's interpreter
        [str(python), "-c", code], capture_output=True, text=True, check=True
    )
    installed = set(json.loads(result.stdout)) - {"pip", "setuptools", "wheel"}
    assert installed == {"smppgw"}
    gateway = subprocess.run(  # noqa: S603
        [str(python), "-c", "import smppgw.gateway"], capture_output=True, text=True, check=False
    )
    assert gateway.returncode == 1
    assert "pip install 'smppgw[gateway]'" in gateway.stderr
