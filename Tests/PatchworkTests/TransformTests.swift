import Foundation
import XCTest
import Patchwork
import PatchworkData

final class TransformTests: XCTestCase {
    /// An [H, W, C] image whose every value is distinct: (index + 1) / (count + 1).
    private func ramp(_ h: Int, _ w: Int, _ c: Int = 3) -> Tensor {
        let n = h * w * c
        return Tensor((0..<n).map { Float($0 + 1) / Float(n + 1) }, shape: [h, w, c])
    }

    private func random(_ h: Int, _ w: Int, _ c: Int = 3, seed: UInt64 = 1) -> Tensor {
        Tensor.randomUniform([h, w, c], generator: Generator(seed: seed))
    }

    // MARK: Against torchvision (Fixtures/ops/transforms.json, scripts/reference/transforms.py)

    func testDeterministicFunctionsMatchTorchvision() {
        let g = Generator(seed: 0)
        var ops: [String: (OpCase, [Tensor]) -> [Tensor]] = [:]
        ops["brightness"] = { c, x in [ColorJitter.adjustBrightness(x[0], c.float("factor"))] }
        ops["contrast"] = { c, x in [ColorJitter.adjustContrast(x[0], c.float("factor"))] }
        ops["saturation"] = { c, x in [ColorJitter.adjustSaturation(x[0], c.float("factor"))] }
        ops["hue"] = { c, x in [ColorJitter.adjustHue(x[0], c.float("factor"))] }
        ops["resized_crop"] = { c, x in
            let crop = cropImage(x[0], top: c.int("top"), left: c.int("left"), height: c.int("height"), width: c.int("width"))
            let size = c.ints("size")
            return [resizeImage(crop, height: size[0], width: size[1])]
        }
        ops["resize_shorter"] = { c, x in [Resize(c.int("size"))(x[0], generator: g)] }
        ops["center_crop"] = { c, x in
            let size = c.ints("size")
            return [CenterCrop(height: size[0], width: size[1])(x[0], generator: g)]
        }
        ops["pad"] = { c, x in
            let mode: PaddingMode
            switch c.string("mode") {
            case "reflect": mode = .reflect
            case "symmetric": mode = .symmetric
            case "edge": mode = .edge
            default: mode = .constant(c.float("fill"))
            }
            return [padImage(x[0], padding: c.int("padding"), mode: mode)]
        }
        ops["normalize"] = { c, x in
            let mean = c.args["mean"]!.array!.map { Float($0.double!) }, std = c.args["std"]!.array!.map { Float($0.double!) }
            return [Normalize(mean: mean, std: std)(x[0], generator: g)]
        }
        ops["hflip"] = { _, x in [RandomHorizontalFlip(p: 1)(x[0], generator: g)] }
        checkReferenceCases("transforms", atol: 2e-6, rtol: 1e-5, ops: ops)
    }

    // MARK: Random image transforms

    func testRandomCropWithPadding() {
        let image = ramp(8, 8, 2)
        for mode in [PaddingMode.constant(0), .reflect] {
            let padded = padImage(image, padding: 4, mode: mode)
            XCTAssertEqual(padded.shape, [16, 16, 2])
            var offsets = Set<Int>()
            for seed in 0..<40 {
                let out = RandomCrop(size: 8, padding: 4, paddingMode: mode)(image, generator: Generator(seed: UInt64(seed)))
                XCTAssertEqual(out.shape, [8, 8, 2])
                // The output is exactly one window of the padded image.
                var matches: [Int] = []
                for t in 0...8 { for l in 0...8 where cropImage(padded, top: t, left: l, height: 8, width: 8).scalars == out.scalars {
                    matches.append(t * 9 + l)
                } }
                XCTAssertEqual(matches.count, 1, "seed \(seed): \(matches)")
                offsets.formUnion(matches)
                if mode == .reflect { XCTAssertFalse(out.scalars.contains(0)) }
            }
            XCTAssertGreaterThan(offsets.count, 15, "crops should land at many offsets")
        }
        // Reflect padding mirrors without repeating the edge.
        let row = padImage(Tensor([1, 2, 3], shape: [1, 3, 1]).padded([(2, 2), (0, 0), (0, 0)]), padding: 2, mode: .reflect)
        XCTAssertEqual(row.selecting(axis: 0, index: 4).scalars, [3, 2, 1, 2, 3, 2, 1])
        // No padding and a crop of the full size: the image itself.
        XCTAssertEqual(RandomCrop(size: 8)(image, generator: Generator(seed: 1)).scalars, image.scalars)
    }

    func testRandomResizedCrop() {
        let image = random(20, 30)
        let t = RandomResizedCrop(size: 12)
        for seed in 0..<30 {
            let g = Generator(seed: UInt64(seed))
            let out = t(image, generator: g)
            XCTAssertEqual(out.shape, [12, 12, 3])
            XCTAssertGreaterThanOrEqual(out.min().item(), 0)
            XCTAssertLessThanOrEqual(out.max().item(), 1)
            XCTAssertEqual(out.scalars, t(image, generator: Generator(seed: UInt64(seed))).scalars, "same seed, same crop")
            let box = t.window(imageHeight: 20, imageWidth: 30, generator: Generator(seed: UInt64(seed)))
            XCTAssertTrue(box.top >= 0 && box.left >= 0 && box.top + box.height <= 20 && box.left + box.width <= 30)
            let area = Float(box.height * box.width) / 600, ratio = Float(box.width) / Float(box.height)
            // Rounding the sides moves area and ratio a little beyond their ranges.
            XCTAssertTrue(area > 0.06 && area <= 1.0, "area \(area)")
            XCTAssertTrue(ratio > 0.6 && ratio < 1.6, "ratio \(ratio)")
        }
        XCTAssertNotEqual(t(image, generator: Generator(seed: 1)).scalars, t(image, generator: Generator(seed: 2)).scalars)
        // No try can fit a ratio of 3 at full area: torchvision's central fallback, clamped to the ratio.
        let wide = RandomResizedCrop(size: 4, scale: 1...1, ratio: 3...3)
        let box = wide.window(imageHeight: 10, imageWidth: 10, generator: Generator(seed: 0))
        XCTAssertTrue(box == (3, 0, 3, 10), "\(box)")
        let tallBox = RandomResizedCrop(size: 4, scale: 1...1, ratio: 0.25...0.5).window(imageHeight: 10, imageWidth: 10, generator: Generator(seed: 0))
        XCTAssertTrue(tallBox == (0, 2, 10, 5), "\(tallBox)")
        let wideImage = RandomResizedCrop(size: 4, scale: 1...1, ratio: 2...3).window(imageHeight: 10, imageWidth: 40, generator: Generator(seed: 0))
        XCTAssertTrue(wideImage == (0, 5, 10, 30), "\(wideImage)")
    }

    func testHorizontalFlipIsExact() {
        let image = ramp(5, 7, 3)
        let flipped = RandomHorizontalFlip(p: 1)(image, generator: Generator(seed: 0))
        for i in 0..<5 { for j in 0..<7 { for c in 0..<3 { XCTAssertEqual(flipped[i, j, c], image[i, 6 - j, c]) } } }
        XCTAssertEqual(RandomHorizontalFlip(p: 1)(flipped, generator: Generator(seed: 0)).scalars, image.scalars)
        XCTAssertEqual(RandomHorizontalFlip(p: 0)(image, generator: Generator(seed: 0)).scalars, image.scalars)
        let flips = (0..<400).filter { RandomHorizontalFlip()(image, generator: Generator(seed: UInt64($0))).scalars != image.scalars }.count
        XCTAssertTrue((150...250).contains(flips), "\(flips) of 400 flipped")
    }

    func testResizeCenterCropNormalize() {
        let image = random(12, 9)
        XCTAssertEqual(Resize(6)(image, generator: Generator(seed: 0)).shape, [8, 6, 3])
        XCTAssertEqual(Resize(height: 5, width: 20)(image, generator: Generator(seed: 0)).shape, [5, 20, 3])
        XCTAssertEqual(CenterCrop(size: 4)(image, generator: Generator(seed: 0)).scalars,
                       cropImage(image, top: 4, left: 2, height: 4, width: 4).scalars)
        let normalized = Normalize(mean: [0.5, 0.25, 0], std: [0.5, 2, 1])(image, generator: Generator(seed: 0))
        XCTAssertEqual(normalized[3, 4, 0], (image[3, 4, 0] - 0.5) / 0.5)
        XCTAssertEqual(normalized[3, 4, 1], (image[3, 4, 1] - 0.25) / 2)
        XCTAssertEqual(normalized[3, 4, 2], image[3, 4, 2])
    }

    func testColorJitterAndCompose() {
        let image = random(6, 7)
        let jitter = ColorJitter(brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1)
        var outputs = Set<[Float]>()
        for seed in 0..<10 {
            let out = jitter(image, generator: Generator(seed: UInt64(seed)))
            XCTAssertEqual(out.shape, image.shape)
            XCTAssertTrue(out.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
            XCTAssertEqual(out.scalars, jitter(image, generator: Generator(seed: UInt64(seed))).scalars)
            outputs.insert(out.scalars)
        }
        XCTAssertEqual(outputs.count, 10)
        XCTAssertEqual(ColorJitter()(image, generator: Generator(seed: 3)).scalars, image.scalars)
        // Grey images: brightness and contrast apply, saturation and hue do nothing.
        let grey = random(4, 4, 1)
        XCTAssertEqual(ColorJitter(saturation: 0.9, hue: 0.5)(grey, generator: Generator(seed: 0)).scalars, grey.scalars)
        XCTAssertEqual(ColorJitter(brightness: 0.5)(grey, generator: Generator(seed: 0)).shape, [4, 4, 1])

        let pipeline = Compose([RandomResizedCrop(size: 8), RandomHorizontalFlip(), jitter, Normalize.imageNet])
        let a = pipeline(random(16, 12), generator: Generator(seed: 7))
        XCTAssertEqual(a.shape, [8, 8, 3])
        XCTAssertEqual(a.scalars, pipeline(random(16, 12), generator: Generator(seed: 7)).scalars)
    }

    // MARK: Mixup and CutMix

    /// B images, image k constant (k + 1) / 10, labels 0..<B.
    private func constantBatch(_ b: Int, h: Int = 8, w: Int = 10) -> Batch {
        let values = (0..<b).flatMap { k in [Float](repeating: Float(k + 1) / 10, count: h * w * 2) }
        return Batch(images: Tensor(values, shape: [b, h, w, 2]), labels: Array(0..<b))
    }

    func testBetaAndGammaSampling() {
        let g = Generator(seed: 42)
        for (a, b) in [(2.0, 5.0), (0.4, 0.4), (1.0, 1.0)] {
            let n = 20_000
            let draws = (0..<n).map { _ in g.nextBeta(a, b) }
            XCTAssertTrue(draws.allSatisfy { $0 >= 0 && $0 <= 1 })
            let mean = draws.reduce(0, +) / Double(n)
            let variance = draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
            XCTAssertEqual(mean, a / (a + b), accuracy: 0.01, "Beta(\(a), \(b)) mean")
            XCTAssertEqual(variance, a * b / ((a + b) * (a + b) * (a + b + 1)), accuracy: 0.01, "Beta(\(a), \(b)) variance")
        }
        for shape in [0.3, 1.0, 4.5] {
            let mean = (0..<20_000).map { _ in g.nextGamma(shape: shape) }.reduce(0, +) / 20_000
            XCTAssertEqual(mean, shape, accuracy: 0.05 * max(shape, 1), "Gamma(\(shape)) mean")
        }
    }

    func testMixupTargetsAndImages() {
        let batch = constantBatch(6)
        for seed in 0..<10 {
            for smoothing: Float in [0, 0.1] {
                let mix = MixupOrCutmix(mixupAlpha: 0.4, cutmixAlpha: 0, labelSmoothing: smoothing)
                let out = mix.apply(batch, classes: 8, generator: Generator(seed: UInt64(seed)))
                XCTAssertFalse(out.usedCutmix)
                let lam = out.lambda
                XCTAssertTrue(lam >= 0 && lam <= 1)
                let y = out.batch.targets!
                XCTAssertEqual(y.shape, [6, 8])
                let off = smoothing / 8, on = 1 - smoothing + off
                for i in 0..<6 {
                    let row = (0..<8).map { y[i, $0] }
                    XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-6)
                    XCTAssertEqual(y[i, i], on * lam + off * (1 - lam), accuracy: 1e-6)
                    XCTAssertEqual(y[i, 5 - i], on * (1 - lam) + off * lam, accuracy: 1e-6)
                    XCTAssertEqual(y[i, 7], off, accuracy: 1e-7)
                    // Image i is λ·x_i + (1-λ)·x_{5-i}.
                    let want = Float(i + 1) / 10 * lam + Float(6 - i) / 10 * (1 - lam)
                    XCTAssertEqual(out.batch.images[i, 3, 4, 1], want, accuracy: 1e-6)
                }
                XCTAssertEqual(out.batch.labels, batch.labels)
                // The BatchTransform entry point gives the same batch.
                XCTAssertEqual(mix(batch, classes: 8, generator: Generator(seed: UInt64(seed))).images.scalars,
                               out.batch.images.scalars)
            }
        }
        // probability 0: no mixing, but (smoothed) one-hot targets.
        let none = Mixup(alpha: 1, probability: 0, labelSmoothing: 0.2)(batch, classes: 6, generator: Generator(seed: 0))
        XCTAssertEqual(none.images.scalars, batch.images.scalars)
        XCTAssertEqual(none.targets![2, 2], 1 - 0.2 + 0.2 / 6, accuracy: 1e-7)
    }

    func testCutmixBoxAndLambda() {
        let batch = constantBatch(4)
        var sawClipped = false
        for seed in 0..<30 {
            let out = MixupOrCutmix(mixupAlpha: 0, cutmixAlpha: 1).apply(batch, classes: 4, generator: Generator(seed: UInt64(seed)))
            XCTAssertTrue(out.usedCutmix)
            let box = out.box!
            let area = (box.bottom - box.top) * (box.right - box.left)
            XCTAssertEqual(out.lambda, 1 - Float(area) / 80, accuracy: 1e-6, "λ corrected by the box area")
            if box.top == 0 || box.left == 0 || box.bottom == 8 || box.right == 10 { sawClipped = true }
            for i in 0..<4 {
                let own = Float(i + 1) / 10, partner = Float(4 - i) / 10
                let pixels = out.batch.images.selecting(axis: 0, index: i).scalars
                let fromPartner = pixels.filter { $0 == partner }.count
                if i != 4 - 1 - i {
                    XCTAssertEqual(Float(fromPartner) / Float(pixels.count), 1 - out.lambda, accuracy: 1e-6)
                    XCTAssertEqual(pixels.filter { $0 == own }.count + fromPartner, pixels.count)
                }
                for r in box.top..<box.bottom { for c in box.left..<box.right { XCTAssertEqual(out.batch.images[i, r, c, 0], partner) } }
                let y = out.batch.targets!
                XCTAssertEqual(y[i, i], out.lambda, accuracy: 1e-6)
                XCTAssertEqual(y[i, 3 - i], 1 - out.lambda, accuracy: 1e-6)
                XCTAssertEqual((0..<4).map { y[i, $0] }.reduce(0, +), 1, accuracy: 1e-6)
            }
        }
        XCTAssertTrue(sawClipped, "some boxes should be clipped by the border")
    }

    func testMixupOrCutmixSwitch() {
        let batch = constantBatch(4)
        func kinds(_ t: MixupOrCutmix) -> Set<Bool> {
            Set((0..<40).map { t.apply(batch, classes: 4, generator: Generator(seed: UInt64($0))).usedCutmix })
        }
        XCTAssertEqual(kinds(MixupOrCutmix(switchProbability: 0)), [false])
        XCTAssertEqual(kinds(MixupOrCutmix(switchProbability: 1)), [true])
        XCTAssertEqual(kinds(MixupOrCutmix(switchProbability: 0.5)), [false, true])
    }

    // MARK: DataLoader

    /// Image k is constant (k mod 97)/97 with a gradient across columns; label k mod 10.
    /// Samples in `corrupt` throw, naming a file; each read sleeps `delay` microseconds.
    struct ToyDataset: Dataset {
        var count: Int
        var corrupt: Set<Int> = []
        var delay: UInt32 = 0
        var classNames: [String] { (0..<10).map { "class\($0)" } }
        var imageShape: [Int] { [12, 10, 3] }
        func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
            if delay > 0 { usleep(delay) }
            if corrupt.contains(index) { throw DataError("/data/toy/img_\(index).png: cannot decode image (bad Huffman code)") }
            let base = Float(index % 97) / 97
            let values = (0..<360).map { i in base * 0.5 + Float(i % 30) / 60 }
            return (Tensor(values, shape: [12, 10, 3]), index % 10)
        }
    }

    private func collect(_ loader: DataLoader, epoch: Int, startingAt: Int = 0) throws -> [Batch] {
        var result: [Batch] = []
        for r in loader.batches(epoch: epoch, startingAt: startingAt) { result.append(try r.get()) }
        return result
    }

    private func augmentedLoader(prefetch: Int = 2, seed: UInt64 = 5, dataset: Dataset = ToyDataset(count: 45)) -> DataLoader {
        DataLoader(dataset: dataset, batchSize: 8, shuffle: true, dropLast: false,
                   transform: Compose([RandomResizedCrop(size: 8), RandomHorizontalFlip(), ColorJitter(brightness: 0.3, hue: 0.1)]),
                   batchTransform: MixupOrCutmix(labelSmoothing: 0.1), seed: seed, prefetch: prefetch)
    }

    private func assertSame(_ a: [Batch], _ b: [Batch], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.labels, y.labels, message, file: file, line: line)
            XCTAssertEqual(x.images.scalars, y.images.scalars, message, file: file, line: line)
            XCTAssertEqual(x.targets?.scalars, y.targets?.scalars, message, file: file, line: line)
        }
    }

    func testLoaderIsReproducibleAndResumable() throws {
        let loader = augmentedLoader()
        XCTAssertEqual(loader.count, 6)
        let run1 = try collect(loader, epoch: 3)
        XCTAssertEqual(run1.map { $0.labels.count }, [8, 8, 8, 8, 8, 5])
        XCTAssertEqual(run1[0].images.shape, [8, 8, 8, 3])
        XCTAssertEqual(run1[0].targets?.shape, [8, 10])
        assertSame(run1, try collect(augmentedLoader(), epoch: 3), "a second loader, same seed and epoch")
        assertSame(run1, try collect(augmentedLoader(prefetch: 0), epoch: 3), "no prefetch")
        assertSame(Array(run1[2...]), try collect(loader, epoch: 3, startingAt: 2), "resumed at batch 2")
        XCTAssertEqual(try collect(loader, epoch: 3, startingAt: 6).count, 0)
        XCTAssertEqual(try loader.batch(epoch: 3, index: 4).images.scalars, run1[4].images.scalars)
        let other = try collect(loader, epoch: 4)
        XCTAssertNotEqual(other[0].images.scalars, run1[0].images.scalars, "another epoch draws differently")
        XCTAssertNotEqual(try collect(augmentedLoader(seed: 6), epoch: 3)[0].images.scalars, run1[0].images.scalars)

        // Every sample once per epoch; shuffled, but in order without shuffle; dropLast.
        let plain = DataLoader(dataset: ToyDataset(count: 45), batchSize: 8, shuffle: false, dropLast: true)
        XCTAssertEqual(plain.count, 5)
        let batches = try collect(plain, epoch: 0)
        XCTAssertEqual(batches.flatMap(\.labels), (0..<40).map { $0 % 10 })
        XCTAssertNil(batches[0].targets)
        XCTAssertEqual(loader.order(epoch: 3).sorted(), Array(0..<45))
        XCTAssertNotEqual(loader.order(epoch: 3), Array(0..<45))
        XCTAssertNotEqual(loader.order(epoch: 3), loader.order(epoch: 4))
        XCTAssertEqual(loader.order(epoch: 3), augmentedLoader().order(epoch: 3))
    }

    /// DistributedSampler's dealing: rank r's batch b holds positions r, r+N, … of the one-process
    /// batch b (same images, same augmentation), every rank serves the same number of training
    /// batches, and an evaluation loader serves every sample exactly once over the ranks.
    func testShardsDealOutEachGlobalBatch() throws {
        let dataset = ToyDataset(count: 45)
        let sampleSize = 12 * 10 * 3
        func samples(_ batch: Batch) -> [[Float]] {
            let values = batch.images.scalars
            return (0..<batch.labels.count).map { Array(values[($0 * sampleSize)..<(($0 + 1) * sampleSize)]) }
        }
        for ranks in [2, 3, 4] {
            let global = 12
            let whole = DataLoader(dataset: dataset, batchSize: global, shuffle: true, dropLast: true,
                                   transform: RandomHorizontalFlip(), seed: 9)
            XCTAssertEqual(whole.count, 3)
            for epoch in [0, 1] {
                let reference = try collect(whole, epoch: epoch).map(samples)
                for rank in 0..<ranks {
                    let shard = DataLoader(dataset: dataset, batchSize: global, shuffle: true, dropLast: true,
                                           transform: RandomHorizontalFlip(), seed: 9,
                                           shard: DataLoader.Shard(rank: rank, count: ranks))
                    XCTAssertEqual(shard.count, whole.count, "\(ranks) ranks: every rank takes the one-process number of steps")
                    XCTAssertEqual(shard.shardBatchSize, global / ranks)
                    let batches = try collect(shard, epoch: epoch)
                    XCTAssertEqual(batches.count, whole.count)
                    for (b, batch) in batches.enumerated() {
                        let expected = stride(from: rank, to: global, by: ranks).map { reference[b][$0] }
                        XCTAssertEqual(samples(batch), expected, "\(ranks) ranks, rank \(rank), epoch \(epoch), batch \(b)")
                    }
                }
            }
            // Evaluation: no drop, no padding; the ranks' counts differ by at most one batch.
            var seen: [Int] = []
            var counts: [Int] = []
            for rank in 0..<ranks {
                let shard = DataLoader(dataset: dataset, batchSize: global, shuffle: false, dropLast: false,
                                       shard: DataLoader.Shard(rank: rank, count: ranks))
                let batches = try collect(shard, epoch: 0)
                XCTAssertEqual(batches.count, shard.count)
                counts.append(batches.count)
                seen += batches.flatMap { samples($0).map { Int(($0[0] * 97 / 0.5).rounded()) } }
            }
            XCTAssertEqual(seen.sorted(), Array(0..<45), "\(ranks) ranks: each test sample once")
            XCTAssertLessThanOrEqual(counts.max()! - counts.min()!, 1)
        }
    }

    func testLoaderSurfacesDatasetErrors() {
        for prefetch in [0, 2] {
            let dataset = ToyDataset(count: 40, corrupt: [17])
            let loader = DataLoader(dataset: dataset, batchSize: 4, shuffle: false, prefetch: prefetch)
            var good = 0
            var failure: Error?
            for r in loader.batches(epoch: 0) {
                switch r {
                case .success: good += 1
                case .failure(let e): failure = e
                }
            }
            XCTAssertEqual(good, 4, "batches before the corrupt sample")
            let text = failure.map { "\($0)" } ?? ""
            XCTAssertTrue(text.contains("/data/toy/img_17.png") && text.contains("batch 4"), text)
            // The throwing form.
            let it = loader.batches(epoch: 0, startingAt: 4).makeIterator()
            XCTAssertThrowsError(try it.nextBatch()) { XCTAssertTrue("\($0)".contains("img_17.png")) }
            XCTAssertNil(try it.nextBatch(), "the epoch ends after an error")
        }
        waitForProducers()
    }

    /// Waits (up to 5 s) until no producer thread runs.
    private func waitForProducers(file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(5)
        while DataLoader.runningProducers > 0 && Date() < deadline { usleep(2_000) }
        XCTAssertEqual(DataLoader.runningProducers, 0, "producer threads still running", file: file, line: line)
    }

    func testDroppingTheIteratorStopsTheProducer() throws {
        waitForProducers()
        let slow = ToyDataset(count: 400, delay: 5_000)  // 2 s for a whole epoch
        let loader = DataLoader(dataset: slow, batchSize: 4, shuffle: true, transform: RandomHorizontalFlip(), prefetch: 2)
        do {
            let it = loader.batches(epoch: 0).makeIterator()
            XCTAssertEqual(DataLoader.runningProducers, 1)
            XCTAssertEqual(try it.nextBatch()?.labels.count, 4)
            XCTAssertEqual(it.position, 1)
        }
        waitForProducers()
        // Breaking out of a for loop drops the iterator too.
        let start = Date()
        for (k, r) in loader.batches(epoch: 1).enumerated() {
            _ = try r.get()
            if k == 2 { break }
        }
        waitForProducers()
        XCTAssertLessThan(Date().timeIntervalSince(start), 1, "the producer should not run the whole epoch")
        // An iterator dropped before its first batch.
        _ = loader.batches(epoch: 2).makeIterator()
        waitForProducers()
    }
}
