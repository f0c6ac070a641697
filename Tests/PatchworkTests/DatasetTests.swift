import CZlib
import Foundation
import XCTest
import Patchwork
import PatchworkData

final class DatasetTests: XCTestCase {
    var dir: String = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-datasets-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ components: String...) -> String { components.reduce(dir) { ($0 as NSString).appendingPathComponent($1) } }

    func write(_ bytes: [UInt8], to file: String) throws {
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: file))
    }

    func assertThrows(_ expression: @autoclosure () throws -> Any, containing parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            XCTAssertTrue(error is DataError, "not a DataError: \(error)", file: file, line: line)
            for part in parts { XCTAssertTrue("\(error)".contains(part), "\"\(error)\" does not mention \"\(part)\"", file: file, line: line) }
        }
    }

    // MARK: CIFAR

    /// Pixel byte of record `r` at channel c, row y, column x.
    func cifarByte(_ r: Int, _ c: Int, _ y: Int, _ x: Int) -> UInt8 { UInt8((r * 7 + c * 31 + y * 3 + x * 5) % 256) }

    func cifarRecords(_ labels: [[UInt8]], first: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for (i, label) in labels.enumerated() {
            bytes += label
            for c in 0..<3 { for y in 0..<32 { for x in 0..<32 { bytes.append(cifarByte(first + i, c, y, x)) } } }
        }
        return bytes
    }

    func checkPixels(_ image: Tensor, record r: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(image.shape, [32, 32, 3], file: file, line: line)
        let v = image.scalars
        for (y, x, c) in [(0, 0, 0), (0, 1, 0), (1, 0, 2), (31, 17, 1), (5, 30, 2)] {
            XCTAssertEqual(v[(y * 32 + x) * 3 + c], Float(cifarByte(r, c, y, x)) / 255, accuracy: 1e-7, "(\(y), \(x), \(c))", file: file, line: line)
        }
    }

    func testCIFAR10RoundTrip() throws {
        let folder = path("cifar-10-batches-bin")
        for b in 1...5 {
            try write(cifarRecords([[UInt8(b)], [UInt8(9 - b)]], first: 2 * (b - 1)), to: (folder as NSString).appendingPathComponent("data_batch_\(b).bin"))
        }
        try write(cifarRecords([[3], [0], [9]], first: 100), to: (folder as NSString).appendingPathComponent("test_batch.bin"))
        let names = (0..<10).map { "c\($0)" }
        try write(Array((names.joined(separator: "\n") + "\n\n").utf8), to: (folder as NSString).appendingPathComponent("batches.meta.txt"))

        // The parent folder and the unpacked folder both work.
        let train = try CIFAR(directory: dir, split: .train)
        XCTAssertEqual(train.count, 10)
        XCTAssertEqual(train.classNames, names)
        XCTAssertEqual((0..<10).map { try! train.sample($0).label }, [1, 8, 2, 7, 3, 6, 4, 5, 5, 4])
        for r in [0, 3, 9] { checkPixels(try train.sample(r).image, record: r) }
        let test = try CIFAR(directory: folder, split: .test)
        XCTAssertEqual(test.count, 3)
        XCTAssertEqual(try test.sample(2).label, 9)
        checkPixels(try test.sample(1).image, record: 101)
        XCTAssertThrowsError(try test.sample(3))

        // Without the meta file: the standard names.
        try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent("batches.meta.txt"))
        XCTAssertEqual(try CIFAR(directory: dir, split: .test).classNames, CIFAR.cifar10Names)
    }

    func testCIFAR100RoundTripFineAndCoarse() throws {
        let folder = path("cifar-100-binary")
        try write(cifarRecords([[4, 30], [19, 99], [0, 0]], first: 0), to: (folder as NSString).appendingPathComponent("train.bin"))
        try write(cifarRecords([[7, 55]], first: 50), to: (folder as NSString).appendingPathComponent("test.bin"))
        let fine = try CIFAR(directory: dir, variant: .cifar100(), split: .train)
        XCTAssertEqual(fine.count, 3)
        XCTAssertEqual(fine.classNames.count, 100)
        XCTAssertEqual(fine.classNames[30], "dolphin")
        XCTAssertEqual(fine.classNames.last, "worm")
        XCTAssertEqual((0..<3).map { try! fine.sample($0).label }, [30, 99, 0])
        XCTAssertEqual(fine.coarseLabel(1), 19)
        checkPixels(try fine.sample(1).image, record: 1)
        let coarse = try CIFAR(directory: folder, variant: .cifar100(coarse: true), split: .test)
        XCTAssertEqual(coarse.classNames.count, 20)
        XCTAssertEqual(try coarse.sample(0).label, 7)
        XCTAssertEqual(coarse.fineLabel(0), 55)
        checkPixels(try coarse.sample(0).image, record: 50)
        try write(Array((0..<20).map { "super\($0)" }.joined(separator: "\n").utf8), to: (folder as NSString).appendingPathComponent("coarse_label_names.txt"))
        XCTAssertEqual(try CIFAR(directory: folder, variant: .cifar100(coarse: true), split: .test).classNames[3], "super3")
    }

    func testCIFARErrorsNameTheFile() throws {
        let folder = path("cifar-10-batches-bin")
        for b in 1...5 { try write(cifarRecords([[1]], first: 0), to: (folder as NSString).appendingPathComponent("data_batch_\(b).bin")) }
        let bad = (folder as NSString).appendingPathComponent("data_batch_3.bin")
        try write([UInt8](repeating: 1, count: 1000), to: bad)
        assertThrows(try CIFAR(directory: dir, split: .train), containing: [bad, "size 1000 is not a multiple of the 3073-byte record"])
        // Missing test batch.
        assertThrows(try CIFAR(directory: dir, split: .test), containing: [(folder as NSString).appendingPathComponent("test_batch.bin"), "missing"])
        // A label out of range.
        try write(cifarRecords([[1], [12]], first: 0), to: bad)
        assertThrows(try CIFAR(directory: dir, split: .train), containing: [bad, "record 1 has label 12"])
        // CIFAR-100's record is 3074 bytes.
        try write(cifarRecords([[1]], first: 0), to: path("cifar-100-binary", "train.bin"))
        assertThrows(try CIFAR(directory: dir, variant: .cifar100(), split: .train), containing: ["train.bin", "3074-byte record"])
        assertThrows(try CIFAR(directory: path("nowhere"), split: .train), containing: [path("nowhere"), "no such folder"])
    }

    // MARK: MNIST

    func idx(magic: UInt32, dims: [Int], data: [UInt8]) -> [UInt8] {
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)] }
        return be(magic) + dims.flatMap { be(UInt32($0)) } + data
    }

    func mnistPixels(_ n: Int) -> [UInt8] { (0..<(n * 784)).map { UInt8(($0 * 13) % 256) } }

    func gzipWrite(_ bytes: [UInt8], to file: String) {
        let f = gzopen(file, "wb")
        XCTAssertNotNil(f)
        let written = bytes.withUnsafeBufferPointer { gzwrite(f, $0.baseAddress, UInt32($0.count)) }
        XCTAssertEqual(Int(written), bytes.count)
        XCTAssertEqual(gzclose(f), Z_OK)
    }

    func checkMNIST(_ data: MNIST, labels: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(data.count, labels.count, file: file, line: line)
        XCTAssertEqual(data.imageShape, [28, 28, 1], file: file, line: line)
        for i in 0..<labels.count {
            let (image, label) = try data.sample(i)
            XCTAssertEqual(label, labels[i], file: file, line: line)
            XCTAssertEqual(image.shape, [28, 28, 1], file: file, line: line)
            let v = image.scalars
            for p in [0, 1, 29, 783] { XCTAssertEqual(v[p], Float(((i * 784 + p) * 13) % 256) / 255, file: file, line: line) }
        }
    }

    func testMNISTPlainAndGzip() throws {
        try write(idx(magic: 0x803, dims: [3, 28, 28], data: mnistPixels(3)), to: path("plain", "train-images-idx3-ubyte"))
        try write(idx(magic: 0x801, dims: [3], data: [5, 0, 9]), to: path("plain", "train-labels-idx1-ubyte"))
        try checkMNIST(try MNIST(directory: path("plain"), split: .train), labels: [5, 0, 9])

        try FileManager.default.createDirectory(atPath: path("gz"), withIntermediateDirectories: true)
        gzipWrite(idx(magic: 0x803, dims: [2, 28, 28], data: mnistPixels(2)), to: path("gz", "t10k-images-idx3-ubyte.gz"))
        gzipWrite(idx(magic: 0x801, dims: [2], data: [7, 1]), to: path("gz", "t10k-labels-idx1-ubyte.gz"))
        let test = try MNIST(directory: path("gz"), split: .test, classNames: MNIST.fashionNames)
        try checkMNIST(test, labels: [7, 1])
        XCTAssertEqual(test.classNames[9], "Ankle boot")
        XCTAssertTrue(test.imagesPath.hasSuffix(".gz"))
    }

    func testMNISTErrorsNameTheFile() throws {
        let images = path("m", "train-images-idx3-ubyte"), labels = path("m", "train-labels-idx1-ubyte")
        try write(idx(magic: 0x801, dims: [1, 28, 28], data: mnistPixels(1)), to: images)
        try write(idx(magic: 0x801, dims: [1], data: [3]), to: labels)
        assertThrows(try MNIST(directory: path("m"), split: .train), containing: [images, "bad magic number 0x00000801", "0x00000803"])
        try write(idx(magic: 0x803, dims: [2, 28, 28], data: mnistPixels(1)), to: images)
        assertThrows(try MNIST(directory: path("m"), split: .train), containing: [images, "truncated", "2 images"])
        try write(idx(magic: 0x803, dims: [2, 28, 28], data: mnistPixels(2)), to: images)
        assertThrows(try MNIST(directory: path("m"), split: .train), containing: [images, labels, "count mismatch", "2 images", "1 labels"])
        try write(idx(magic: 0x801, dims: [2], data: [3, 10]), to: labels)
        assertThrows(try MNIST(directory: path("m"), split: .train), containing: [labels, "label 10"])
        assertThrows(try MNIST(directory: path("m"), split: .test), containing: [path("m", "t10k-images-idx3-ubyte"), "no such file"])
        // Corrupt gzip: a cut-off stream.
        try FileManager.default.removeItem(atPath: images)
        gzipWrite(idx(magic: 0x803, dims: [2, 28, 28], data: mnistPixels(2)), to: images + ".gz")
        let gz = try Data(contentsOf: URL(fileURLWithPath: images + ".gz"))
        try write([UInt8](gz.prefix(gz.count / 2)), to: images + ".gz")
        assertThrows(try MNIST(directory: path("m"), split: .train), containing: [images + ".gz", "gzip"])
    }

    // MARK: Image folders

    func testImageFolderClassesResizeAndCorruptFile() throws {
        let red = Tensor([Float](repeating: 0, count: 12 * 10 * 3).enumerated().map { $0.offset % 3 == 0 ? 1 : 0 }, shape: [12, 10, 3])
        let grey = Tensor.full([6, 6, 1], 0.4)
        try FileManager.default.createDirectory(atPath: path("f", "dog", "more"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: path("f", "cat"), withIntermediateDirectories: true)
        try ImageIO.savePNG(red, to: path("f", "dog", "b.png"))
        try ImageIO.savePNG(grey, to: path("f", "dog", "more", "c.PNG"))
        try ImageIO.savePNG(red, to: path("f", "cat", "a.png"))
        try write(Array("not an image".utf8), to: path("f", "cat", "notes.txt"))

        let data = try ImageFolder(root: path("f"), imageSize: 8)
        XCTAssertEqual(data.classNames, ["cat", "dog"])
        XCTAssertEqual(data.count, 3)
        XCTAssertEqual(data.imageShape, [8, 8, 3])
        XCTAssertEqual((0..<3).map { try! data.sample($0).label }, [0, 1, 1])
        let (r, _) = try data.sample(0)
        XCTAssertEqual(r.shape, [8, 8, 3])
        XCTAssertEqual(r[3, 3, 0], 1, accuracy: 1e-5)
        XCTAssertEqual(r[3, 3, 1], 0, accuracy: 1e-5)
        let (g, _) = try data.sample(2)
        XCTAssertEqual(g.shape, [8, 8, 3])
        XCTAssertEqual(g[4, 4, 2], Float(102) / 255, accuracy: 1e-5)
        // Without a size: the first image's.
        XCTAssertEqual(try ImageFolder(root: path("f")).imageShape, [12, 10, 3])

        // A corrupt image fails when read, naming the file.
        try write(Array("garbage".utf8), to: path("f", "cat", "z.png"))
        let broken = try ImageFolder(root: path("f"))
        assertThrows(try broken.sample(1), containing: [path("f", "cat", "z.png"), "cannot decode"])

        // Empty and missing folders fail at open.
        try FileManager.default.createDirectory(atPath: path("f", "emu"), withIntermediateDirectories: true)
        assertThrows(try ImageFolder(root: path("f")), containing: [path("f", "emu"), "no images"])
        try FileManager.default.createDirectory(atPath: path("empty"), withIntermediateDirectories: true)
        assertThrows(try ImageFolder(root: path("empty")), containing: [path("empty"), "no class subfolders"])
        assertThrows(try ImageFolder(root: path("missing")), containing: [path("missing"), "no such folder"])
    }

    // MARK: ShapeTex

    func testShapeTexIsDeterministicPerSample() throws {
        let a = try ShapeTex(split: .train, seed: 7), b = try ShapeTex(split: .train, seed: 7)
        XCTAssertEqual(a.count, 10_000)
        XCTAssertEqual(try ShapeTex(split: .test).count, 2_000)
        XCTAssertEqual(a.imageShape, [32, 32, 3])
        // Same (seed, split, index): the same image, whatever was drawn before and on whichever thread.
        let first = a.image(123).scalars
        _ = b.image(5)
        XCTAssertEqual(b.image(123).scalars, first)
        var fromThreads = [[Float]](repeating: [], count: 4)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            let v = a.image(123).scalars
            lock.lock(); fromThreads[t] = v; lock.unlock()
        }
        XCTAssertTrue(fromThreads.allSatisfy { $0 == first })
        // Different index, split or seed: different images.
        XCTAssertNotEqual(a.image(124).scalars, first)
        XCTAssertNotEqual(a.image(133).scalars, first)   // same class
        XCTAssertNotEqual(try ShapeTex(split: .test, seed: 7).image(123).scalars, first)
        XCTAssertNotEqual(try ShapeTex(split: .train, seed: 8).image(123).scalars, first)
        // Values in [0, 1]; any size.
        for split in ShapeTex.Split.allCases {
            let data = try ShapeTex(split: split, count: 20, size: 24)
            for i in 0..<20 {
                let (image, label) = try data.sample(i)
                XCTAssertEqual(image.shape, [24, 24, 3])
                XCTAssertTrue(image.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
                XCTAssertTrue((0..<10).contains(label))
            }
        }
        XCTAssertEqual(try ShapeTex(split: .train, size: 64).image(0).shape, [64, 64, 3])
        XCTAssertThrowsError(try ShapeTex(split: .train).sample(10_000))
    }

    func testShapeTexLabelsAndCueConflictPairs() throws {
        let train = try ShapeTex(split: .train)
        for i in 0..<30 { XCTAssertEqual(train.shapeLabel(i), train.textureLabel(i)); XCTAssertEqual(train.label(i), i % 10) }
        XCTAssertEqual(train.name(3), "star-waves")
        let conflict = try ShapeTex(split: .cueConflict)
        XCTAssertEqual(conflict.count, 900)
        var pairs = Set<[Int]>()
        for i in 0..<ShapeTex.conflictPairs {
            let s = conflict.shapeLabel(i)!, t = conflict.textureLabel(i)!
            XCTAssertNotEqual(s, t)
            XCTAssertEqual(try conflict.sample(i).label, s)
            pairs.insert([s, t])
        }
        XCTAssertEqual(pairs.count, 90)
        XCTAssertEqual(conflict.shapeLabel(90), conflict.shapeLabel(0))
        XCTAssertEqual(conflict.textureLabel(90), conflict.textureLabel(0))
        let shapes = try ShapeTex(split: .shapeOnly), textures = try ShapeTex(split: .textureOnly)
        XCTAssertNil(shapes.textureLabel(4)); XCTAssertEqual(shapes.shapeLabel(4), 4); XCTAssertEqual(shapes.name(4), "cross")
        XCTAssertNil(textures.shapeLabel(4)); XCTAssertEqual(try textures.sample(4).label, 4); XCTAssertEqual(textures.name(4), "grid")
    }

    /// Grey values standardised per image.
    func standardisedGrey(_ image: Tensor) -> [Float] {
        let v = image.scalars, n = v.count / 3
        var g = [Float](repeating: 0, count: n)
        var sum: Float = 0, squares: Float = 0
        for i in 0..<n {
            let value: Float = (v[3 * i] + v[3 * i + 1] + v[3 * i + 2]) / 3
            g[i] = value; sum += value; squares += value * value
        }
        let mean = sum / Float(n)
        let sd = max((squares / Float(n) - mean * mean).squareRoot(), 1e-3)
        for i in 0..<n { g[i] = (g[i] - mean) / sd }
        return g
    }

    /// Nearest-centroid accuracy of `feature` on `test`, centroids from `train`.
    func nearestCentroidAccuracy(_ train: ShapeTex, _ test: ShapeTex, _ feature: (Tensor) -> [Float]) -> Double {
        var sums = [[Float]](repeating: [], count: 10), counts = [Int](repeating: 0, count: 10)
        for i in 0..<train.count {
            let f = feature(train.image(i)), k = train.label(i)
            sums[k] = sums[k].isEmpty ? f : zip(sums[k], f).map(+)
            counts[k] += 1
        }
        let centroids = (0..<10).map { k in sums[k].map { $0 / Float(counts[k]) } }
        var correct = 0
        for i in 0..<test.count {
            let f = feature(test.image(i))
            let d = centroids.map { c in zip(c, f).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) }
            if d.firstIndex(of: d.min()!)! == test.label(i) { correct += 1 }
        }
        return Double(correct) / Double(test.count)
    }

    /// Texture is a colour-free cue: autocorrelation of the standardised grey
    /// image at shifts up to 6 px separates the textures by nearest centroid.
    func testShapeTexTexturesAreSeparable() throws {
        let train = try ShapeTex(split: .textureOnly, count: 200, seed: 1), test = try ShapeTex(split: .textureOnly, count: 100, seed: 2)
        let accuracy = nearestCentroidAccuracy(train, test) { image in
            let g = self.standardisedGrey(image), s = 32
            var f: [Float] = []
            for dy in 0...6 {
                for dx in -6...6 where dy > 0 || dx > 0 {
                    var sum: Float = 0, n = 0
                    for y in 0..<(s - dy) { for x in max(0, -dx)..<min(s, s - dx) { sum += g[y * s + x] * g[(y + dy) * s + x + dx]; n += 1 } }
                    f.append(sum / Float(n))
                }
            }
            return f
        }
        XCTAssertGreaterThan(accuracy, 0.8, "texture nearest-centroid accuracy \(accuracy)")
    }

    /// Shape is a colour-free cue: the radial profile of the silhouette (mask
    /// = pixels away from the corner's colour), normalised by its RMS radius,
    /// separates the shapes by nearest centroid well above chance (10%).
    func testShapeTexShapesAreSeparable() throws {
        let train = try ShapeTex(split: .shapeOnly, count: 200, seed: 1), test = try ShapeTex(split: .shapeOnly, count: 100, seed: 2)
        let accuracy = nearestCentroidAccuracy(train, test) { image in
            let v = image.scalars, s = 32
            var points: [(Float, Float, Float)] = []    // x, y, coverage
            for y in 0..<s {
                for x in 0..<s {
                    let o = (y * s + x) * 3
                    let dr: Float = abs(v[o] - v[0]), dg: Float = abs(v[o + 1] - v[1]), db: Float = abs(v[o + 2] - v[2])
                    if dr + dg + db > 0.3 { points.append((Float(x), Float(y), 1)) }
                }
            }
            let n = Float(points.count)
            let cx = points.map(\.0).reduce(0, +) / n, cy = points.map(\.1).reduce(0, +) / n
            let radii = points.map { p -> Float in
                let dx = p.0 - cx, dy = p.1 - cy
                return (dx * dx + dy * dy).squareRoot()
            }
            let rms = (radii.map { $0 * $0 }.reduce(0, +) / n).squareRoot()
            var histogram = [Float](repeating: 0, count: 12)
            for r in radii { histogram[min(11, Int(r / rms * 6))] += 1 / n }
            return histogram
        }
        XCTAssertGreaterThan(accuracy, 0.5, "shape nearest-centroid accuracy \(accuracy)")
    }

    // MARK: Specs

    func testDatasetSpecs() throws {
        let small = try DatasetSpec.open("shapetex:size=16,train=50", split: .train)
        XCTAssertEqual(small.count, 50)
        XCTAssertEqual(small.imageShape, [16, 16, 3])
        XCTAssertEqual(try DatasetSpec.open("shapetex", split: .test).count, 2000)
        XCTAssertEqual(try DatasetSpec.open("shapetex", split: .test, imageSize: 40).imageShape, [40, 40, 3])
        let resized = try DatasetSpec.open("shapetex:size=16", split: .test, imageSize: 20)
        XCTAssertEqual(resized.imageShape, [20, 20, 3])
        XCTAssertEqual(try resized.sample(0).image.shape, [20, 20, 3])
        assertThrows(try DatasetSpec.open("shapetex:colour=red", split: .train), containing: ["colour=red", "size"])
        for count in ["0", "-5", "100000001", "99999999999999999999", "1e3"] {
            assertThrows(try DatasetSpec.open("shapetex:test=\(count)", split: .test), containing: ["test \"\(count)\"", "from 1 to 100000000"])
        }
        XCTAssertEqual(try DatasetSpec.open("shapetex:test=20000", split: .test).count, 20000)

        try write(idx(magic: 0x803, dims: [1, 28, 28], data: mnistPixels(1)), to: path("m", "train-images-idx3-ubyte"))
        try write(idx(magic: 0x801, dims: [1], data: [2]), to: path("m", "train-labels-idx1-ubyte"))
        let mnist = try DatasetSpec.open("mnist:" + path("m"), split: .train, imageSize: 32, channels: 3)
        XCTAssertEqual(mnist.imageShape, [32, 32, 3])
        let (image, label) = try mnist.sample(0)
        XCTAssertEqual(image.shape, [32, 32, 3]); XCTAssertEqual(label, 2)
        XCTAssertEqual(try DatasetSpec.open("fashion-mnist:" + path("m"), split: .train).classNames, MNIST.fashionNames)

        try FileManager.default.createDirectory(atPath: path("imgs", "train", "a"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: path("imgs", "train", "b"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: path("imgs", "test", "b"), withIntermediateDirectories: true)
        for p in [path("imgs", "train", "a", "1.png"), path("imgs", "train", "b", "2.png"), path("imgs", "test", "b", "3.png")] {
            try ImageIO.savePNG(Tensor.full([5, 7, 3], 0.5), to: p)
        }
        let (train, test) = try DatasetSpec.openSplits("folder:" + path("imgs"))
        XCTAssertEqual(train.classNames, ["a", "b"]); XCTAssertEqual(test.classNames, ["a", "b"])
        XCTAssertEqual(try test.sample(0).label, 1)
        XCTAssertEqual(test.imageShape, [5, 7, 3])
        assertThrows(try DatasetSpec.open("folder:" + path("imgs", "train"), split: .train), containing: ["PATH/train/<class>", "missing"])
        assertThrows(try DatasetSpec.open("svhn:/data", split: .train), containing: ["unknown dataset kind \"svhn\"", "cifar10", "shapetex", "folder", "imagenet"])
        assertThrows(try DatasetSpec.open("imagenet:" + path("none"), split: .test), containing: ["none", "no such folder"])
        assertThrows(try DatasetSpec.open("cifar10", split: .train), containing: ["cifar10:PATH"])
    }
}
