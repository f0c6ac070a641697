// swift-tools-version:6.0
import PackageDescription

// A diagnostic for bf16 training (docs/PERFORMANCE.md, "bf16's accuracy on 20 000 test images"):
// how far `--precision bf16` moves vit_nano's gradients from fp32's at the same weights, against
// the minibatch noise of fp32's own gradients. Not part of the test suite or CI; run it with
//
//     swift run -c release --package-path Examples/BF16GradientNoise BF16GradientNoise init|WEIGHTS [BATCHES]
let package = Package(
    name: "BF16GradientNoise",
    dependencies: [.package(name: "Patchwork", path: "../..")],
    targets: [
        .executableTarget(
            name: "BF16GradientNoise",
            dependencies: [
                .product(name: "Patchwork", package: "Patchwork"),
                .product(name: "PatchworkNN", package: "Patchwork"),
                .product(name: "PatchworkModels", package: "Patchwork"),
                .product(name: "PatchworkData", package: "Patchwork"),
                .product(name: "PatchworkTrain", package: "Patchwork"),
            ]),
    ]
)
