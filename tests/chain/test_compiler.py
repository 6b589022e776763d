"""Tests for chain.compiler: compiling through the solc-js wrapper, the cache, and errors.

Every test compiles its own small contracts in a temporary folder, so none depends on the
state of the project's contracts/ folder.
"""

from pathlib import Path
from typing import Any

import pytest
import solcx

from chain.compiler import compile_contracts, load_contract
from chain.errors import ChainError, CompilationError

COUNTER_SOURCE = """\
// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ICounter} from "./interfaces/ICounter.sol";

contract Counter is ICounter {
    uint256 private count;

    function increment() external {
        count += 1;
    }

    function current() external view returns (uint256) {
        return count;
    }
}
"""

COUNTER_INTERFACE_SOURCE = """\
// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

interface ICounter {
    function increment() external;

    function current() external view returns (uint256);
}
"""


@pytest.fixture
def contracts_dir(tmp_path: Path) -> Path:
    """A contracts/ folder holding Counter and its interface in interfaces/."""
    directory = tmp_path / "contracts"
    (directory / "interfaces").mkdir(parents=True)
    (directory / "Counter.sol").write_text(COUNTER_SOURCE)
    (directory / "interfaces" / "ICounter.sol").write_text(COUNTER_INTERFACE_SOURCE)
    return directory


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    """An empty folder for the compiler cache."""
    return tmp_path / "build"


def test_compiling_returns_abi_and_bytecode_for_every_contract(
    contracts_dir: Path, build_dir: Path
) -> None:
    contracts = compile_contracts(contracts_dir, build_dir=build_dir)

    assert set(contracts) == {"Counter", "ICounter"}
    counter = contracts["Counter"]
    assert counter.name == "Counter"
    assert {entry["name"] for entry in counter.abi if entry["type"] == "function"} == {
        "increment",
        "current",
    }
    assert counter.bytecode.startswith("0x") and len(counter.bytecode) > 100
    int(counter.bytecode, 16)
    assert counter.deployed_bytecode.startswith("0x") and counter.runtime_size > 0
    assert counter.source_path == contracts_dir / "Counter.sol"
    assert counter.is_deployable
    assert "external" in counter.gas_estimates

    interface = contracts["ICounter"]
    assert interface.source_path == contracts_dir / "interfaces" / "ICounter.sol"
    assert not interface.is_deployable


def test_second_compile_reads_the_cache_without_running_solc(
    contracts_dir: Path, build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = compile_contracts(contracts_dir, build_dir=build_dir)
    cache_files = list(build_dir.glob("contracts-*.json"))
    assert len(cache_files) == 1

    def refuse_to_compile(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("solc was run although the cache is fresh")

    monkeypatch.setattr(solcx, "compile_standard", refuse_to_compile)
    second = compile_contracts(contracts_dir, build_dir=build_dir)

    assert second == first
    assert load_contract("Counter", contracts_dir, build_dir=build_dir) == first["Counter"]


def test_changed_source_misses_the_cache(contracts_dir: Path, build_dir: Path) -> None:
    compile_contracts(contracts_dir, build_dir=build_dir)
    counter_file = contracts_dir / "Counter.sol"
    counter_file.write_text(counter_file.read_text().replace("count += 1", "count += 2"))

    compile_contracts(contracts_dir, build_dir=build_dir)

    assert len(list(build_dir.glob("contracts-*.json"))) == 2


def test_syntax_error_raises_compilation_error_naming_file_and_line(
    contracts_dir: Path, build_dir: Path
) -> None:
    (contracts_dir / "Broken.sol").write_text(
        "// SPDX-License-Identifier: MIT\n"
        "pragma solidity 0.8.30;\n"
        "\n"
        "contract Broken {\n"
        "    uint256 value\n"
        "}\n"
    )

    with pytest.raises(CompilationError) as raised:
        compile_contracts(contracts_dir, build_dir=build_dir)

    assert isinstance(raised.value, ChainError)
    assert "ParserError" in str(raised.value)
    assert "contracts/Broken.sol:6:" in str(raised.value)
    assert not list(build_dir.glob("contracts-*.json"))


def test_warnings_do_not_fail_compilation(contracts_dir: Path, build_dir: Path) -> None:
    (contracts_dir / "Unused.sol").write_text(
        "// SPDX-License-Identifier: MIT\n"
        "pragma solidity 0.8.30;\n"
        "\n"
        "contract Unused {\n"
        "    function echo(uint256 value) external pure returns (uint256) {\n"
        "        uint256 ignored = 1;\n"
        "        return value;\n"
        "    }\n"
        "}\n"
    )

    contracts = compile_contracts(contracts_dir, build_dir=build_dir)

    assert contracts["Unused"].is_deployable


def test_openzeppelin_imports_resolve_from_node_modules(
    contracts_dir: Path, build_dir: Path
) -> None:
    (contracts_dir / "SignatureCheck.sol").write_text(
        "// SPDX-License-Identifier: MIT\n"
        "pragma solidity 0.8.30;\n"
        "\n"
        'import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";\n'
        "\n"
        "contract SignatureCheck {\n"
        "    function signer(bytes32 digest, bytes calldata signature)\n"
        "        external\n"
        "        pure\n"
        "        returns (address)\n"
        "    {\n"
        "        return ECDSA.recover(digest, signature);\n"
        "    }\n"
        "}\n"
    )

    contracts = compile_contracts(contracts_dir, build_dir=build_dir)

    assert contracts["SignatureCheck"].is_deployable
    # Imported library contracts are not reported as ours.
    assert "ECDSA" not in contracts


def test_function_with_many_locals_compiles_through_the_ir_pipeline(
    contracts_dir: Path, build_dir: Path
) -> None:
    # Twenty locals live at once: the legacy pipeline fails with "stack too deep".
    names = [f"v{index}" for index in range(20)]
    declarations = "".join(
        f"        uint256 {name} = seed + {index};\n" for index, name in enumerate(names)
    )
    total = " + ".join(f"{name} * {name}" for name in names)
    (contracts_dir / "ManyLocals.sol").write_text(
        "// SPDX-License-Identifier: MIT\n"
        "pragma solidity 0.8.30;\n"
        "\n"
        "contract ManyLocals {\n"
        "    function mix(uint256 seed) external pure returns (uint256) {\n"
        f"{declarations}"
        f"        return {total};\n"
        "    }\n"
        "}\n"
    )

    contracts = compile_contracts(contracts_dir, build_dir=build_dir)

    assert contracts["ManyLocals"].is_deployable


def test_unknown_contract_name_raises_compilation_error(
    contracts_dir: Path, build_dir: Path
) -> None:
    with pytest.raises(CompilationError, match="'Missing'.*Counter"):
        load_contract("Missing", contracts_dir, build_dir=build_dir)


def test_folder_without_sources_raises_compilation_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(CompilationError, match="no .sol files"):
        compile_contracts(empty, build_dir=tmp_path / "build")
