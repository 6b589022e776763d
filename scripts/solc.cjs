#!/usr/bin/env node
// A `solc` command line for py-solc-x, backed by the npm `solc` package (solc-js).
//
// py-solc-x cannot download native compilers on our machines, so chain/compiler.py hands it
// this script as `solc_binary`. It supports the two calls py-solc-x makes:
//
//   solc.cjs --version
//       Prints the version the way native solc does; py-solc-x reads it with the regex
//       (\d+\.\d+\.\d+)(?:-nightly...)?(\+commit.\w+).
//   solc.cjs --standard-json [--base-path DIR] [--include-path DIR]... [--allow-paths A,B]
//       Reads Standard JSON input on stdin and writes only the Standard JSON output on stdout.
//
// Imports that are not in the input are read from disk: first relative to the base path and
// the include paths, then from this project's root and its node_modules, so that
// `import "@openzeppelin/contracts/...";` works. Files outside those directories and the
// allowed paths are refused, as native solc refuses them.
//
// Any other option is answered the way native solc answers it ("unrecognised option"), which
// py-solc-x turns into its UnknownOption error.

"use strict";

const fs = require("node:fs");
const path = require("node:path");

const PROJECT_ROOT = path.resolve(__dirname, "..");
const NODE_MODULES = path.join(PROJECT_ROOT, "node_modules");

function parseArguments(argv) {
  const options = {
    version: false,
    standardJson: false,
    basePath: process.cwd(),
    includePaths: [],
    allowPaths: [],
  };
  for (let index = 0; index < argv.length; index += 1) {
    const argument = argv[index];
    const takeValue = () => {
      index += 1;
      if (index >= argv.length) {
        fail(`option '${argument}' requires an argument`);
      }
      return argv[index];
    };
    switch (argument) {
      case "--version":
        options.version = true;
        break;
      case "--standard-json":
        options.standardJson = true;
        break;
      case "--base-path":
        options.basePath = path.resolve(takeValue());
        break;
      case "--include-path":
        options.includePaths.push(path.resolve(takeValue()));
        break;
      case "--allow-paths":
        for (const allowed of takeValue().split(",")) {
          if (allowed !== "") {
            options.allowPaths.push(path.resolve(allowed));
          }
        }
        break;
      case "-":
        // py-solc-x adds "-" (read stdin) for non-standard-json calls; stdin is read anyway.
        break;
      default:
        fail(`unrecognised option '${argument}'`);
    }
  }
  return options;
}

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function isInside(directory, file) {
  const relative = path.relative(directory, file);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

function makeImportReader(options) {
  const searchRoots = [options.basePath, ...options.includePaths, PROJECT_ROOT, NODE_MODULES];
  const readableRoots = [...searchRoots, ...options.allowPaths];
  return function readImport(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : searchRoots.map((root) => path.join(root, importPath));
    for (const candidate of candidates) {
      const file = path.resolve(candidate);
      if (!readableRoots.some((root) => isInside(root, file))) {
        continue;
      }
      if (fs.existsSync(file) && fs.statSync(file).isFile()) {
        return { contents: fs.readFileSync(file, "utf8") };
      }
    }
    return { error: `File not found in ${searchRoots.join(", ")}: ${importPath}` };
  };
}

function compileStandardJson(solc, options) {
  const input = fs.readFileSync(0, "utf8");
  // solc-js may print diagnostics with console.log; stdout must stay pure JSON.
  console.log = (...parts) => process.stderr.write(`${parts.join(" ")}\n`);
  const output = solc.compile(input, { import: makeImportReader(options) });
  process.stdout.write(output);
  process.stdout.write("\n");
}

function main() {
  const options = parseArguments(process.argv.slice(2));
  if (!options.version && !options.standardJson) {
    fail("solc.cjs supports only --version and --standard-json");
  }
  const solc = require("solc");
  if (options.version) {
    process.stdout.write("solc, the solidity compiler commandline interface\n");
    process.stdout.write(`Version: ${solc.version()}\n`);
    return;
  }
  compileStandardJson(solc, options);
}

main();
