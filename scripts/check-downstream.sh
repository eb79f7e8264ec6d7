#!/usr/bin/env bash
# Proves Unroll is a package others can depend on: a fresh SwiftPM package outside the repository
# depends on it by path, builds (release; SwiftPM refuses unsafe flags in a dependency), and runs a
# short program that learns a dictionary and saves it. Part of .ci/run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/Sources/Downstream"
identity=$(basename "$repo" | tr '[:upper:]' '[:lower:]')   # SwiftPM names a path dependency by its folder
cat >"$work/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "Downstream",
    dependencies: [.package(path: "$repo")],
    targets: [.executableTarget(name: "Downstream", dependencies: [.product(name: "Unroll", package: "$identity")])])
SWIFT
cat >"$work/Sources/Downstream/main.swift" <<'SWIFT'
import Unroll
import UnrollCore
import UnrollIO

var rng = Random(seed: 0)
let signals = Tensor.normal([200, 16], rng: &rng)
var start = Tensor.normal([24, 16], rng: &rng)
start.normalizeRows()
let encoder = UnrolledEncoder(layers: 20, algorithm: .fista, lambda: .scalar(0.1), step: .inverseLipschitz())
let config = TrainerConfig(encoder: encoder, mode: .leastSquares, optimizer: .adam(learningRate: 1e-2), batchSize: 50)
var trainer = try DictionaryTrainer(dictionary: try DenseDictionary(weights: start), data: signals, config: config)
let first = try trainer.trainStep().loss
try trainer.train(steps: 39)
let last = try GradientMode.leastSquares.evaluate(signals: signals, operator: trainer.dictionary, encoder: encoder).losses.loss
let model = try UnrolledAutoencoder(dictionary: trainer.dictionary, encoder: encoder)
try ModelFile(model: .dense(model), info: ["training.step": String(trainer.step)]).write(to: CommandLine.arguments[1])
print("downstream: \(trainer.step) steps, loss \(first) → \(last)")
SWIFT
echo "check-downstream: building a package that depends on Unroll by path" >&2
(cd "$work" && swift build -c release 2>&1 | tail -n 3)
"$work/.build/release/Downstream" "$work/model.safetensors"
python3 - "$work/model.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
meta = header["__metadata__"]
assert header["dictionary"]["shape"] == [24, 16] and meta["training.step"] == "40", header
assert meta["format"] == "unroll-model/2" and meta["model.kind"] == "dense" and meta["encoder.algorithm"] == "fista", meta
print("check-downstream: the saved model file reads back (unroll-model/2, dense [24, 16], 40 steps)")
PY
