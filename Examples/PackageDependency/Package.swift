// swift-tools-version:6.0
import PackageDescription

// An app that depends on Patchwork by version, as any Swift package would. It checks that
// SwiftPM accepts Patchwork as a versioned dependency (no `unsafeFlags` in its targets) and
// that its products build and train from outside the repository.
//
// scripts/check-package-dependency.sh clones the repository to a temp folder, tags the clone
// with Patchwork's version and points PATCHWORK_URL at it. Without PATCHWORK_URL this uses the
// repository this folder sits in, which then needs a tag `0.x.y` on a commit.
let patchworkURL = Context.environment["PATCHWORK_URL"]
    ?? "file://" + Context.packageDirectory + "/../.."

let package = Package(
    name: "PackageDependency",
    dependencies: [
        .package(url: patchworkURL, from: "0.1.0"),
    ],
    targets: [
        .executableTarget(
            name: "TrainOneStep",
            dependencies: [
                .product(name: "Patchwork", package: "Patchwork"),
                .product(name: "PatchworkNN", package: "Patchwork"),
                .product(name: "PatchworkModels", package: "Patchwork"),
            ]),
    ]
)
