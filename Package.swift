// swift-tools-version:6.0
import PackageDescription

// Release builds are the ones that matter for numeric code (`swift build -c release`): SwiftPM's
// default -O with whole-module optimisation. No `unsafeFlags` (no -Ounchecked, no -target-cpu):
// SwiftPM refuses a package with them as a versioned dependency, preconditions and bounds checks
// stay on, and the binary runs on any x86-64. The kernels that lost most without -target-cpu
// native are in CPatchworkKernels, with AVX-512 / AVX2 / baseline paths picked at run time;
// docs/PERFORMANCE.md ("Release builds without unsafeFlags") has the measurements.
let engineFlags: [SwiftSetting] = [
    .swiftLanguageMode(.v5),
]

let package = Package(
    name: "Patchwork",
    products: [
        .library(name: "Patchwork", targets: ["Patchwork"]),
        .library(name: "PatchworkNN", targets: ["PatchworkNN"]),
        .library(name: "PatchworkModels", targets: ["PatchworkModels"]),
        .library(name: "PatchworkData", targets: ["PatchworkData"]),
        .library(name: "PatchworkTrain", targets: ["PatchworkTrain"]),
        .library(name: "PatchworkAnalysis", targets: ["PatchworkAnalysis"]),
        .executable(name: "patchwork", targets: ["patchwork"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Debian's oneDNN (libdnnl-dev): sgemm, plus libgomp, whose thread team we share (DESIGN.md §2).
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        // Debian's stb (libstb-dev): PNG/JPEG/BMP decoding and PNG encoding.
        .systemLibrary(name: "CSTB", path: "Sources/CSTB"),
        // Debian's zlib (zlib1g-dev): gunzip for MNIST's .gz files.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Debian's FFTW (libfftw3-dev), single precision: the analyses' Fourier transforms.
        .systemLibrary(name: "CFFTW", path: "Sources/CFFTW"),
        // Debian's Open MPI (libopenmpi-dev): data-parallel training under mpirun (PatchworkTrain's
        // ProcessGroup). Its headers live outside the default include path; pkg-config says where.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c"),
        // GELU, SiLU, sigmoid, tanh, erf, exp and softmax, compiled for AVX-512, AVX2 and baseline
        // x86-64 and chosen at run time (Sources/CPatchworkKernels/kernels.c says why in C).
        .target(name: "CPatchworkKernels"),
        // Debian's libjpeg-turbo (libjpeg62-turbo-dev) through its libjpeg API, with Pillow's
        // decoding settings, and an error handler that returns instead of calling exit()
        // (a C target rather than a module map: the handler needs setjmp/longjmp in C).
        .target(name: "CPatchworkJPEG", linkerSettings: [.linkedLibrary("jpeg")]),
        .target(name: "Patchwork", dependencies: ["CDNNL", "CPatchworkKernels"], swiftSettings: engineFlags),
        .target(name: "PatchworkNN", dependencies: ["Patchwork"], swiftSettings: engineFlags),
        .target(name: "PatchworkModels", dependencies: ["Patchwork", "PatchworkNN"], swiftSettings: engineFlags),
        .target(name: "PatchworkData", dependencies: ["Patchwork", "CSTB", "CZlib", "CPatchworkJPEG"], swiftSettings: engineFlags),
        .target(name: "PatchworkTrain", dependencies: ["Patchwork", "PatchworkNN", "PatchworkModels", "PatchworkData", "CMPI"],
                swiftSettings: engineFlags),
        .target(name: "PatchworkAnalysis",
                dependencies: ["Patchwork", "PatchworkNN", "PatchworkModels", "PatchworkData", "PatchworkTrain", "CFFTW", "CSTB"],
                swiftSettings: engineFlags),
        // The commands, one file each in Commands/ (a library, so tests can parse and run them).
        .target(
            name: "PatchworkCLI",
            dependencies: ["Patchwork", "PatchworkNN", "PatchworkModels", "PatchworkData", "PatchworkTrain", "PatchworkAnalysis", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: engineFlags),
        .executableTarget(
            name: "patchwork",
            dependencies: ["PatchworkCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: engineFlags),
        .testTarget(
            name: "PatchworkTests", dependencies: ["Patchwork", "PatchworkNN", "PatchworkModels", "PatchworkData", "PatchworkTrain", "PatchworkAnalysis", "CZlib"],
            resources: [.copy("Fixtures")],
            swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(
            name: "PatchworkCLITests",
            dependencies: ["Patchwork", "PatchworkNN", "PatchworkModels", "PatchworkTrain", "PatchworkAnalysis", "PatchworkCLI",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
