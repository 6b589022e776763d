"""Compile Yufu's Solidity contracts and cache what the compiler produced.

py-solc-x cannot download native compilers on our machines, so it runs
``scripts/solc.cjs``, a small Node wrapper around the npm ``solc`` package pinned in
``package.json``. A compilation starts Node and takes seconds, so its output is kept in
``build/contracts-<key>.json``, where the key is a SHA-256 over the sources, the compiler
settings and the toolchain versions. A second call with the same inputs reads that file and
starts no Node process.

Run ``python -m chain.compiler`` to compile ``contracts/`` and print each contract's size.
"""

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import solcx
from solcx.exceptions import SolcError

from chain.errors import CompilationError

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
CONTRACTS_DIR: Path = PROJECT_ROOT / "contracts"
BUILD_DIR: Path = PROJECT_ROOT / "build"
NODE_MODULES: Path = PROJECT_ROOT / "node_modules"
SOLC_WRAPPER: Path = PROJECT_ROOT / "scripts" / "solc.cjs"

# npm packages whose files shape the output: the compiler, and the libraries our contracts
# import. Their versions are part of the cache key.
TOOLCHAIN_PACKAGES: tuple[str, ...] = (
    "solc",
    "@openzeppelin/contracts",
    "@safe-global/safe-smart-account",
)

COMPILER_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    # The IR pipeline can move local variables to memory, so functions with many locals
    # compile instead of failing with "stack too deep".
    "viaIR": True,
    # Named explicitly so that a compiler upgrade cannot silently change the target fork.
    "evmVersion": "prague",
    "outputSelection": {
        "*": {
            "*": [
                "abi",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                "evm.gasEstimates",
            ],
        },
    },
}

# The largest runtime code the protocol lets a contract deploy (24 KiB).
MAX_RUNTIME_SIZE: int = 24_576

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledContract:
    """One contract as the compiler produced it.

    Attributes
    ----------
    name
        The contract's name in Solidity.
    abi
        The contract's ABI, a list of JSON entries.
    bytecode
        Creation code as ``0x``-prefixed hex; ``"0x"`` for interfaces and abstract contracts.
    deployed_bytecode
        Runtime code as ``0x``-prefixed hex; ``"0x"`` for interfaces and abstract contracts.
    source_path
        The ``.sol`` file that defines the contract.
    gas_estimates
        solc's ``evm.gasEstimates`` for the contract (creation, external and internal).
    """

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_path: Path
    gas_estimates: dict[str, Any] = field(default_factory=dict)

    @property
    def is_deployable(self) -> bool:
        """Whether the contract has creation code, which interfaces and abstract ones lack."""
        return len(self.bytecode) > 2

    @property
    def runtime_size(self) -> int:
        """Size of the runtime code in bytes."""
        return (len(self.deployed_bytecode) - 2) // 2


def compile_contracts(
    source_dir: Path = CONTRACTS_DIR,
    *,
    build_dir: Path = BUILD_DIR,
    solc_binary: Path = SOLC_WRAPPER,
) -> dict[str, CompiledContract]:
    """Compile every ``*.sol`` file under ``source_dir``, or read the cached result.

    Source files are named to the compiler by their path relative to the parent of
    ``source_dir`` (``contracts/Escrow.sol``), so relative imports between them resolve
    without help; other imports, such as ``@openzeppelin/contracts/...``, are read from
    ``node_modules`` by the wrapper.

    Parameters
    ----------
    source_dir
        Folder holding the Solidity sources, searched recursively.
    build_dir
        Folder for the cache file; created when missing.
    solc_binary
        The compiler command py-solc-x runs.

    Returns
    -------
    dict[str, CompiledContract]
        The contracts defined in ``source_dir``, by name. Contracts that are only imported
        (OpenZeppelin's libraries, for instance) are left out.

    Raises
    ------
    CompilationError
        If there are no sources, two contracts share a name, the toolchain is not
        installed, or solc reports an error; the message carries solc's own diagnostics,
        which name the file and line.
    """
    source_dir = Path(source_dir).resolve()
    root = source_dir.parent
    standard_input = build_standard_input(source_dir)
    key = compute_cache_key(standard_input, read_toolchain_versions())
    cache_file = Path(build_dir) / f"contracts-{key}.json"

    output = _read_cache(cache_file)
    if output is None:
        output = _run_compiler(standard_input, root, solc_binary)
        _write_cache(cache_file, output)
    return _collect_contracts(output, root, set(standard_input["sources"]))


def load_contract(
    name: str,
    source_dir: Path = CONTRACTS_DIR,
    *,
    build_dir: Path = BUILD_DIR,
) -> CompiledContract:
    """Return one compiled contract by name, compiling only when the cache is stale.

    Parameters
    ----------
    name
        The contract's name in Solidity, such as ``"Escrow"``.
    source_dir
        Folder holding the Solidity sources.
    build_dir
        Folder for the cache file.

    Returns
    -------
    CompiledContract
        The contract called ``name``.

    Raises
    ------
    CompilationError
        If compiling fails or no contract under ``source_dir`` is called ``name``.
    """
    contracts = compile_contracts(source_dir, build_dir=build_dir)
    try:
        return contracts[name]
    except KeyError:
        known = ", ".join(sorted(contracts)) or "none"
        raise CompilationError(
            f"no contract named {name!r} in {source_dir} (compiled: {known})"
        ) from None


def build_standard_input(source_dir: Path) -> dict[str, Any]:
    """Build solc's Standard JSON input from every ``*.sol`` file under ``source_dir``.

    Parameters
    ----------
    source_dir
        Folder holding the Solidity sources, searched recursively.

    Returns
    -------
    dict[str, Any]
        The input, with each file's content inline and ``COMPILER_SETTINGS``.

    Raises
    ------
    CompilationError
        If ``source_dir`` holds no ``.sol`` file.
    """
    source_dir = Path(source_dir).resolve()
    files = sorted(source_dir.rglob("*.sol"))
    if not files:
        raise CompilationError(f"no .sol files under {source_dir}")
    root = source_dir.parent
    sources = {
        file.relative_to(root).as_posix(): {"content": file.read_text(encoding="utf-8")}
        for file in files
    }
    return {"language": "Solidity", "sources": sources, "settings": COMPILER_SETTINGS}


def read_toolchain_versions(node_modules: Path = NODE_MODULES) -> dict[str, str]:
    """Read the installed versions of the npm packages in ``TOOLCHAIN_PACKAGES``.

    Reading ``package.json`` files instead of asking solc keeps cache hits free of Node.

    Parameters
    ----------
    node_modules
        The project's ``node_modules`` folder.

    Returns
    -------
    dict[str, str]
        Package name to version, such as ``{"solc": "0.8.30", ...}``.

    Raises
    ------
    CompilationError
        If a package is not installed.
    """
    versions = {}
    for package in TOOLCHAIN_PACKAGES:
        manifest = node_modules / package / "package.json"
        try:
            versions[package] = json.loads(manifest.read_text(encoding="utf-8"))["version"]
        except (OSError, ValueError, KeyError) as error:
            raise CompilationError(
                f"npm package {package} is not installed ({manifest}: {error}); run `npm ci`"
            ) from error
    return versions


def compute_cache_key(standard_input: dict[str, Any], toolchain: dict[str, str]) -> str:
    """Return the SHA-256 hex digest naming the cache file for this input and toolchain."""
    material = json.dumps(
        {"input": standard_input, "toolchain": toolchain},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _run_compiler(standard_input: dict[str, Any], root: Path, solc_binary: Path) -> dict[str, Any]:
    """Run solc through py-solc-x and return its output, raising on any error."""
    try:
        output: dict[str, Any] = solcx.compile_standard(
            standard_input,
            base_path=root,
            allow_paths=[root, NODE_MODULES],
            solc_binary=solc_binary,
        )
    except SolcError as error:
        if error.error_dict:
            # py-solc-x annotates error_dict as a dict, but it holds solc's "errors" list.
            diagnostics = cast(list[dict[str, Any]], error.error_dict)
            raise CompilationError(_format_diagnostics(diagnostics, "error")) from error
        # The wrapper itself failed (Node missing, a crash): show what it printed.
        raise CompilationError(
            f"{solc_binary} failed with exit code {error.return_code}: "
            f"{(error.stderr_data or error.stdout_data or error.message).strip()}"
        ) from error
    except (OSError, ValueError) as error:
        # OSError: the wrapper could not be started; ValueError: it printed no JSON.
        raise CompilationError(f"could not run {solc_binary}: {error}") from error

    warnings = _format_diagnostics(output.get("errors", []), "warning")
    if warnings:
        logger.warning("solc warnings:\n%s", warnings)
    return output


def _format_diagnostics(diagnostics: list[dict[str, Any]], severity: str) -> str:
    """Join solc's formatted messages (``--> contracts/X.sol:12:5``) of one severity."""
    return "\n".join(
        entry.get("formattedMessage") or entry.get("message", "")
        for entry in diagnostics
        if entry.get("severity") == severity
    ).strip()


def _collect_contracts(
    output: dict[str, Any], root: Path, source_names: set[str]
) -> dict[str, CompiledContract]:
    """Turn solc's output into ``CompiledContract``s for the contracts in our own sources."""
    contracts: dict[str, CompiledContract] = {}
    for source_name, by_name in sorted(output.get("contracts", {}).items()):
        if source_name not in source_names:
            continue
        for name, artefact in by_name.items():
            if name in contracts:
                raise CompilationError(
                    f"contract name {name!r} is defined in both "
                    f"{contracts[name].source_path} and {root / source_name}"
                )
            evm = artefact.get("evm", {})
            contracts[name] = CompiledContract(
                name=name,
                abi=artefact.get("abi", []),
                bytecode="0x" + evm.get("bytecode", {}).get("object", ""),
                deployed_bytecode="0x" + evm.get("deployedBytecode", {}).get("object", ""),
                source_path=root / source_name,
                gas_estimates=evm.get("gasEstimates") or {},
            )
    return contracts


def _read_cache(cache_file: Path) -> dict[str, Any] | None:
    """Return the cached compiler output, or None when it is missing or unreadable."""
    try:
        cached: dict[str, Any] = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cached


def _write_cache(cache_file: Path, output: dict[str, Any]) -> None:
    """Write the output atomically, so that a concurrent reader never sees half a file."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(output, handle)
        os.replace(temporary, cache_file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Compile the contracts and print each one's name and code sizes.

    Parameters
    ----------
    argv
        Command-line arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The process exit status: 0 on success, 1 when compilation failed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m chain.compiler", description="Compile Yufu's Solidity contracts."
    )
    parser.add_argument(
        "--contracts", type=Path, default=CONTRACTS_DIR, help="folder of .sol files"
    )
    parser.add_argument("--build", type=Path, default=BUILD_DIR, help="folder for the cache")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    try:
        contracts = compile_contracts(arguments.contracts, build_dir=arguments.build)
    except CompilationError as error:
        print(f"compilation failed:\n{error}", file=sys.stderr)
        return 1

    deployable = {name: c for name, c in sorted(contracts.items()) if c.is_deployable}
    width = max([len("contract"), *(len(name) for name in deployable)])
    print(f"{'contract':<{width}}  {'creation':>10}  {'runtime':>10}")
    for name, contract in deployable.items():
        creation_size = (len(contract.bytecode) - 2) // 2
        too_big = contract.runtime_size > MAX_RUNTIME_SIZE
        note = f"  over the {MAX_RUNTIME_SIZE}-byte limit" if too_big else ""
        print(f"{name:<{width}}  {creation_size:>8} B  {contract.runtime_size:>8} B{note}")
    interfaces = sorted(name for name in contracts if name not in deployable)
    if interfaces:
        print(f"without code (interfaces, abstract): {', '.join(interfaces)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
