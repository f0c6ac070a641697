// swift-tools-version:6.0
import PackageDescription

// Single-threaded timings of the engine's SIMD kernels, to compare two builds of Patchwork
// (e.g. before/after a change of compiler settings). Run with OMP_NUM_THREADS=1:
//   swift run -c release --package-path bench/kernels kernel-bench
let package = Package(
    name: "kernel-bench",
    dependencies: [.package(name: "Patchwork", path: "../..")],
    targets: [
        .executableTarget(name: "kernel-bench", dependencies: [.product(name: "Patchwork", package: "Patchwork")]),
    ]
)
