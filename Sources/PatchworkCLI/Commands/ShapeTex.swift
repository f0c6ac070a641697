import ArgumentParser
import Foundation
import Patchwork
import PatchworkData

struct ShapeTexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shapetex",
        abstract: "Write ShapeTex samples as PNG files, with a contact sheet per split, to look at.",
        discussion: """
        Writes DIR/<split>/<index>_<shape>-<texture>.png (shape-only samples are named by shape, texture-only by \
        texture) and DIR/<split>-sheet.png, a grid of the first samples enlarged with nearest-neighbour pixels: \
        one column per class, or, for cue-conflict, one row per shape and one column per texture.
        Classes: \(zip(ShapeTex.shapeNames, ShapeTex.textureNames).enumerated().map { "\($0): \($1.0)/\($1.1)" }.joined(separator: ", ")).
        """)

    @Option(help: "Folder to write into (created if missing).")
    var out: String

    @Option(help: "train, test, cue-conflict, shape-only, texture-only or all.")
    var split: String = "all"

    @Option(help: "Samples per split (the first N of the split).")
    var count: Int = 100

    @Option(help: "Image side in pixels.")
    var size: Int = 32

    @Option(help: "Dataset seed.")
    var seed: UInt64 = 0

    @Option(help: "Standard deviation of the pixel noise.")
    var noise: Float = 0.02

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must not be negative") }
        try OptionCheck.integer(count, "--count", atLeast: 0, atMost: 1_000_000)
        try OptionCheck.integer(size, "--size", atLeast: 8, atMost: 4096)
        try OptionCheck.nonNegative(noise, "--noise")
        try OptionCheck.outputFolder(out)
        guard split == "all" || ShapeTex.Split(rawValue: split) != nil else {
            throw ValidationError("--split must be one of \(ShapeTex.Split.allCases.map(\.rawValue).joined(separator: ", ")) or all, not \(split)")
        }
    }

    func run() throws {
        let splits = split == "all" ? ShapeTex.Split.allCases : [ShapeTex.Split(rawValue: split)!]
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for s in splits {
            let data = try ShapeTex(split: s, count: count, size: size, seed: seed, noise: noise)
            let folder = (out as NSString).appendingPathComponent(s.rawValue)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let digits = max(5, String(max(count - 1, 0)).count)
            var images: [Tensor] = []
            for i in 0..<count {
                let image = data.image(i)
                let index = String(repeating: "0", count: max(0, digits - String(i).count)) + String(i)
                try ImageIO.savePNG(image, to: (folder as NSString).appendingPathComponent("\(index)_\(data.name(i)).png"))
                if i < 100 { images.append(image) }
            }
            let sheetPath = (out as NSString).appendingPathComponent("\(s.rawValue)-sheet.png")
            if !images.isEmpty {
                try ImageIO.savePNG(contactSheet(images, data: data), to: sheetPath)
            }
            print("\(s.rawValue): \(count) images in \(folder)\(images.isEmpty ? "" : ", sheet \(sheetPath)")")
        }
    }

    /// The first samples on a white grid, 10 columns (cue-conflict: row =
    /// shape, column = texture, the diagonal left blank), enlarged by
    /// nearest neighbour to about 128 px per cell.
    func contactSheet(_ images: [Tensor], data: ShapeTex) -> Tensor {
        let k = ShapeTex.classCount, gap = 2
        var cells: [(row: Int, column: Int, image: Tensor)] = []
        if data.split == .cueConflict {
            for (i, image) in images.enumerated() where i < ShapeTex.conflictPairs {
                let (shape, texture) = data.cues(i)
                cells.append((shape!, texture!, image))
            }
        } else {
            cells = images.enumerated().map { ($0.offset / k, $0.offset % k, $0.element) }
        }
        let rows = (cells.map(\.row).max() ?? 0) + 1
        let cell = size + gap
        let (height, width) = (rows * cell + gap, k * cell + gap)
        var canvas = [Float](repeating: 1, count: height * width * 3)
        for (row, column, image) in cells {
            let pixels = image.scalars
            for y in 0..<size {
                for x in 0..<size {
                    let dst = ((gap + row * cell + y) * width + gap + column * cell + x) * 3
                    let src = (y * size + x) * 3
                    canvas[dst] = pixels[src]; canvas[dst + 1] = pixels[src + 1]; canvas[dst + 2] = pixels[src + 2]
                }
            }
        }
        let scale = max(1, 128 / size)
        if scale == 1 { return Tensor(canvas, shape: [height, width, 3]) }
        var big = [Float](repeating: 0, count: height * scale * width * scale * 3)
        for y in 0..<(height * scale) {
            for x in 0..<(width * scale) {
                let src = ((y / scale) * width + x / scale) * 3, dst = (y * width * scale + x) * 3
                big[dst] = canvas[src]; big[dst + 1] = canvas[src + 1]; big[dst + 2] = canvas[src + 2]
            }
        }
        return Tensor(big, shape: [height * scale, width * scale, 3])
    }
}
