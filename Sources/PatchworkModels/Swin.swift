import Foundation
import Patchwork
import PatchworkNN

// timm's SwinTransformer (timm/models/swin_transformer.py, timm 1.0.31).
// Window helpers → blocks → model → checkpoint filter → named variants.
// The window helpers are shared with DAT's local / shifted-window attention.

// MARK: - Window helpers

/// Swin's relative-position index and bias, and shifted-window mask (shared with DAT).
/// The window partition itself is `WindowPartition` (PatchworkNN), shared with MaxViT.
public enum SwinWindows {
    /// Swin's pair-wise relative position index [N·N] into a (2wh−1)(2ww−1) table.
    public static func relativePositionIndex(_ window: (Int, Int)) -> [Int] {
        let (wh, ww) = window
        let n = wh * ww
        var index = [Int](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                let dy = i / ww - j / ww + wh - 1
                let dx = i % ww - j % ww + ww - 1
                index[i * n + j] = dy * (2 * ww - 1) + dx
            }
        }
        return index
    }

    /// The shifted-window mask [nW, N, N] (0 within a region, −100 across) for an h×w map
    /// (already a multiple of the window), as timm's `get_attn_mask` and DAT's ShiftWindowAttention.
    public static func shiftMask(height: Int, width: Int, window: (Int, Int), shift: (Int, Int)) -> Tensor {
        func region(_ i: Int, _ size: Int, _ win: Int, _ s: Int) -> Int {
            // slices (0, -win), (-win, -s), (-s, None)
            if i < size - win { return 0 }
            if i < size - s { return 1 }
            return 2
        }
        var label = [Int](repeating: 0, count: height * width)
        for y in 0..<height {
            for x in 0..<width {
                label[y * width + x] = region(y, height, window.0, shift.0) * 3 + region(x, width, window.1, shift.1)
            }
        }
        let nh = height / window.0, nw = width / window.1, n = window.0 * window.1
        var mask = [Float](repeating: 0, count: nh * nw * n * n)
        for wy in 0..<nh {
            for wx in 0..<nw {
                let w = wy * nw + wx
                var labels = [Int](repeating: 0, count: n)
                for t in 0..<n {
                    labels[t] = label[(wy * window.0 + t / window.1) * width + wx * window.1 + t % window.1]
                }
                for i in 0..<n { for j in 0..<n where labels[i] != labels[j] { mask[(w * n + i) * n + j] = -100 } }
            }
        }
        return Tensor(mask, shape: [nh * nw, n, n])
    }

    /// Bicubic resample of a flat relative-position table [(2s−1)², heads] to [(2wh−1)(2ww−1), heads]
    /// (as the Swin / DAT authors' checkpoint loaders: F.interpolate(mode="bicubic")).
    static func resampleTable(_ table: Tensor, to window: (Int, Int)) -> Tensor {
        let n = table.shape[0], heads = table.shape[1]
        let side = Int(Double(n).squareRoot().rounded())
        guard side * side == n else { return table }
        let size = (2 * window.0 - 1, 2 * window.1 - 1)
        let grid = table.reshaped([1, side, side, heads])
        return resize(grid, size: size, mode: .bicubic, alignCorners: false).reshaped([size.0 * size.1, heads])
    }

    /// Attention within windows x [G, N, C] (G = B·nW, N = wh·ww) with a fused qkv Linear
    /// and the bias of a flat relative-position table [(2wh−1)(2ww−1), heads] looked up by
    /// `index` (`relativePositionIndex`): Swin's WindowAttention and DAT's local attention.
    /// Returns the heads merged, [G, N, heads·d], before the output projection.
    static func attend(_ x: Tensor, qkv: Linear, heads: Int, scale: Float, table: Tensor, index: [Int], mask: Tensor?,
                       dropout: Dropout, recorder: AttentionRecorder, positions: @autoclosure () -> Tensor?) -> Tensor {
        let g = x.shape[0], n = x.shape[1]
        let fused = qkv(x)
        // [G, N, 3, heads, d] → [3, G, heads, N, d]
        let parts = fused.reshaped([g, n, 3, heads, fused.shape[2] / (3 * heads)]).permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
        let bias = table.indexSelect(axis: 0, indices: index).reshaped([n, n, heads]).permuted([2, 0, 1]).unsqueezed(axis: 0)
        return scaledDotProductAttention(
            q: parts[0], k: parts[1], v: parts[2],
            scale: scale, bias: bias, mask: mask, dropout: dropout, recorder: recorder,
            queryPositions: positions(), keyPositions: positions()).output
    }
}

// MARK: - Blocks

/// timm's WindowAttention: fused qkv, relative-position bias table [(2wh−1)(2ww−1), heads], proj.
public final class WindowAttention: Module, AttentionRecording {
    @Parameter(key: "relative_position_bias_table") var relativePositionBiasTable: Tensor
    @Child(key: "qkv") public var qkv: Linear
    @Child(key: "attn_drop") var attnDrop: Dropout
    @Child(key: "proj") public var proj: Linear
    @Child(key: "proj_drop") var projDrop: Dropout
    public let heads: Int
    public let window: (Int, Int)
    let scale: Float
    /// Non-persistent in timm: recomputed, never stored.
    let relativePositionIndex: [Int]
    public let recorder = AttentionRecorder()

    init(dim: Int, heads: Int, headDim: Int?, window: (Int, Int), qkvBias: Bool, attnDrop: Float, projDrop: Float) {
        let hd = headDim ?? dim / heads
        self.heads = heads
        self.window = window
        scale = 1 / Float(hd).squareRoot()
        _relativePositionBiasTable.wrappedValue = Init.truncatedNormal([(2 * window.0 - 1) * (2 * window.1 - 1), heads], std: 0.02)
        _qkv.wrappedValue = Linear(dim, hd * heads * 3, bias: qkvBias)
        _attnDrop.wrappedValue = Dropout(attnDrop)
        _proj.wrappedValue = Linear(hd * heads, dim)
        _projDrop.wrappedValue = Dropout(projDrop)
        relativePositionIndex = SwinWindows.relativePositionIndex(window)
    }

    /// x [G, N, C] windows; positions [G, N, 2] only evaluated when recording.
    func forward(_ x: Tensor, mask: Tensor?, positions: @autoclosure () -> Tensor?) -> Tensor {
        let mixed = SwinWindows.attend(x, qkv: qkv, heads: heads, scale: scale, table: relativePositionBiasTable,
                                       index: relativePositionIndex, mask: mask, dropout: attnDrop, recorder: recorder,
                                       positions: positions())
        return projDrop(proj(mixed))
    }
}

/// timm's SwinTransformerBlock on [B, H, W, C]: x + attn(norm1 x) in (shifted) windows, then x + mlp(norm2 x).
public final class SwinBlock: Module {
    @Child(key: "norm1") public var norm1: LayerNorm
    @Child(key: "attn") public var attn: WindowAttention
    @Child(key: "drop_path1") var dropPath1: DropPath
    @Child(key: "norm2") public var norm2: LayerNorm
    @Child(key: "mlp") public var mlp: MLP
    @Child(key: "drop_path2") var dropPath2: DropPath
    public let resolution: (Int, Int)
    public let window: (Int, Int)
    public let shift: (Int, Int)
    /// The shifted-window mask [nW, N, N] (nil without a shift); recomputed, never stored.
    public let mask: Tensor?

    init(dim: Int, resolution: (Int, Int), heads: Int, headDim: Int?, window target: (Int, Int), shifted: Bool,
         alwaysPartition: Bool, mlpRatio: Double, qkvBias: Bool, projDrop: Float, attnDrop: Float, dropPath: Float) {
        // timm's _calc_window_shift: a resolution ≤ window clamps the window and disables the shift.
        let targetShift = shifted ? (target.0 / 2, target.1 / 2) : (0, 0)
        var win = target, sh = targetShift
        if !alwaysPartition {
            win = (resolution.0 <= target.0 ? resolution.0 : target.0, resolution.1 <= target.1 ? resolution.1 : target.1)
            sh = (resolution.0 <= win.0 ? 0 : targetShift.0, resolution.1 <= win.1 ? 0 : targetShift.1)
        }
        window = win
        shift = sh
        self.resolution = resolution
        _norm1.wrappedValue = LayerNorm(dim)
        _attn.wrappedValue = WindowAttention(dim: dim, heads: heads, headDim: headDim, window: win, qkvBias: qkvBias,
                               attnDrop: attnDrop, projDrop: projDrop)
        _dropPath1.wrappedValue = DropPath(dropPath)
        _norm2.wrappedValue = LayerNorm(dim)
        _mlp.wrappedValue = MLP(dim, hidden: Int(Double(dim) * mlpRatio), activation: .gelu, dropout: projDrop)
        _dropPath2.wrappedValue = DropPath(dropPath)
        if sh.0 != 0 || sh.1 != 0 {
            let ph = (resolution.0 + win.0 - 1) / win.0 * win.0
            let pw = (resolution.1 + win.1 - 1) / win.1 * win.1
            mask = SwinWindows.shiftMask(height: ph, width: pw, window: win, shift: sh)
        } else {
            mask = nil
        }
    }

    func windowAttention(_ x: Tensor) -> Tensor {
        let (b, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        guard (h, w) == resolution else {
            fail("SwinBlock", "input \(x.shape) does not have the block's resolution \(resolution.0)x\(resolution.1)")
        }
        let shifted = shift != (0, 0)
        var y = shifted ? x.rolled(shifts: [-shift.0, -shift.1], axes: [1, 2]) : x
        let padH = (window.0 - h % window.0) % window.0, padW = (window.1 - w % window.1) % window.1
        if padH > 0 || padW > 0 { y = y.padded([(0, 0), (0, padH), (0, padW), (0, 0)]) }
        let (hp, wp) = (h + padH, w + padW)
        let windows = WindowPartition.split(y, window)
        let out = attn.forward(windows.reshaped([windows.shape[0], window.0 * window.1, windows.shape[3]]), mask: mask,
                               positions: WindowPartition.positions(batch: b, image: (hp, wp), window, shift: shift, unpadded: resolution))
        var merged = WindowPartition.merge(out, window, image: (hp, wp))
        if padH > 0 || padW > 0 { merged = merged.sliced(axis: 1, start: 0, end: h).sliced(axis: 2, start: 0, end: w) }
        return shifted ? merged.rolled(shifts: [shift.0, shift.1], axes: [1, 2]) : merged
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let h = x + dropPath1(windowAttention(norm1(x)))
        return h + dropPath2(mlp(norm2(h)))
    }
}

/// timm's PatchMerging: 2×2 neighbours concatenated as (0,0), (1,0), (0,1), (1,1), LayerNorm, Linear without bias.
public final class PatchMerging: Module {
    @Child(key: "norm") public var norm: LayerNorm
    @Child(key: "reduction") public var reduction: Linear

    init(dim: Int, outDim: Int) {
        _norm.wrappedValue = LayerNorm(4 * dim)
        _reduction.wrappedValue = Linear(4 * dim, outDim, bias: false)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        let (h, w) = (x.shape[1], x.shape[2])
        if h % 2 == 1 || w % 2 == 1 { y = y.padded([(0, 0), (0, h % 2), (0, w % 2), (0, 0)]) }
        let (b, hp, wp, c) = (y.shape[0], y.shape[1], y.shape[2], y.shape[3])
        y = y.reshaped([b, hp / 2, 2, wp / 2, 2, c]).permuted([0, 1, 3, 4, 2, 5]).reshaped([b, hp / 2, wp / 2, 4 * c])
        return reduction(norm(y))
    }
}

/// One Swin stage: optional PatchMerging (every stage after the first), then the blocks.
public final class SwinStage: Module {
    @Child(key: "downsample") var downsample: Module
    @Child(key: "blocks") public var blocks: [SwinBlock]

    init(downsample: Module, blocks: [SwinBlock]) {
        _downsample.wrappedValue = downsample
        _blocks.wrappedValue = blocks
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { blocks.reduce(downsample(x)) { $1($0) } }
}

/// timm's ClassifierHead (pooling, dropout, `fc`).
final class PooledHead: Module {
    @Child(key: "drop") var drop: Dropout
    @Child(key: "fc") var fc: Module
    init(_ features: Int, classes: Int, dropout: Float) {
        _drop.wrappedValue = Dropout(dropout)
        _fc.wrappedValue = classes > 0 ? Linear(features, classes) : Identity()
    }
}

// MARK: - Model

/// The config of timm's `SwinTransformer(...)`, under its argument names.
public struct SwinConfig: Codable, Sendable {
    public var imgSize: Int = 224
    public var patchSize: Int = 4
    public var inChans: Int = 3
    public var numClasses: Int = 1000
    public var globalPool: String = "avg"
    public var embedDim: Int = 96
    public var depths: [Int] = [2, 2, 6, 2]
    public var numHeads: [Int] = [3, 6, 12, 24]
    public var headDim: Int?
    public var windowSize: Int = 7
    public var alwaysPartition: Bool = false
    public var strictImgSize: Bool?
    public var dynamicImgSize: Bool?
    public var mlpRatio: Double = 4
    public var qkvBias: Bool = true
    public var dropRate: Double = 0
    public var projDropRate: Double = 0
    public var attnDropRate: Double = 0
    public var dropPathRate: Double = 0.1
    public var embedLayer: ReferenceCallable?
    public var normLayer: ReferenceCallable?
    public var weightInit: String?

    public init(imgSize: Int = 224, patchSize: Int = 4, embedDim: Int = 96, depths: [Int] = [2, 2, 6, 2],
                numHeads: [Int] = [3, 6, 12, 24], windowSize: Int = 7, numClasses: Int = 1000) {
        self.imgSize = imgSize; self.patchSize = patchSize; self.embedDim = embedDim; self.depths = depths
        self.numHeads = numHeads; self.windowSize = windowSize; self.numClasses = numClasses
    }

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imgSize = try c.value(.imgSize, imgSize)
        patchSize = try c.value(.patchSize, patchSize)
        inChans = try c.value(.inChans, inChans)
        numClasses = try c.value(.numClasses, numClasses)
        globalPool = try c.value(.globalPool, globalPool)
        embedDim = try c.value(.embedDim, embedDim)
        depths = try c.value(.depths, depths)
        numHeads = try c.value(.numHeads, numHeads)
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
        windowSize = try c.value(.windowSize, windowSize)
        alwaysPartition = try c.value(.alwaysPartition, alwaysPartition)
        strictImgSize = try c.decodeIfPresent(Bool.self, forKey: .strictImgSize)
        dynamicImgSize = try c.decodeIfPresent(Bool.self, forKey: .dynamicImgSize)
        mlpRatio = try c.value(.mlpRatio, mlpRatio)
        qkvBias = try c.value(.qkvBias, qkvBias)
        dropRate = try c.value(.dropRate, dropRate)
        projDropRate = try c.value(.projDropRate, projDropRate)
        attnDropRate = try c.value(.attnDropRate, attnDropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        embedLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .embedLayer)
        normLayer = try c.decodeIfPresent(ReferenceCallable.self, forKey: .normLayer)
        weightInit = try c.decodeIfPresent(String.self, forKey: .weightInit)
    }
}

extension SwinConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "swin")
        try check.size(imgSize, "img_size")
        try check.size(patchSize, "patch_size")
        try check.divisible(imgSize, "img_size", by: patchSize, "patch_size")
        try check.width(inChans, "in_chans")
        try check.classes(numClasses)
        try check.width(embedDim, "embed_dim")
        guard (1...8).contains(depths.count) else { throw check.error("depths", depths, "must have 1 to 8 stages") }
        try check.depths(depths, "depths")
        try check.perStage(numHeads, "num_heads", stages: depths.count, as: "depths")
        try check.size(windowSize, "window_size")
        try check.positive(mlpRatio, "mlp_ratio")
        if let h = headDim { try check.width(h, "head_dim") }
        var estimate = 0.0
        var grid = imgSize / patchSize
        for i in 0..<depths.count {
            let width = embedDim << i
            try check.width(width, "embed_dim × 2^\(i) (stage \(i)'s width)")
            if headDim == nil {
                try check.heads(numHeads[i], "num_heads[\(i)]", divide: width, "embed_dim × 2^\(i)")
            } else {
                try check.width(numHeads[i], "num_heads[\(i)]")
            }
            let window = min(windowSize, grid)
            // Blocks, relative-position tables and the shifted windows' attention mask (grid² · window²).
            estimate += ConfigCheck.transformer(width: width, depth: depths[i], mlpRatio: mlpRatio)
                + Double(depths[i] * numHeads[i]) * Double((2 * window - 1) * (2 * window - 1))
                + Double(grid) * Double(grid) * Double(window) * Double(window)
            if i > 0 { grid = (grid + 1) / 2 }
        }
        estimate += ConfigCheck.table(embedDim << (depths.count - 1), numClasses)
        try check.parameters(estimate, "embed_dim, depths, num_heads, mlp_ratio, img_size / patch_size, window_size, num_classes")
        try check.rates([(dropRate, "drop_rate"), (projDropRate, "proj_drop_rate"), (attnDropRate, "attn_drop_rate"),
                           (dropPathRate, "drop_path_rate")])
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: inChans, side: imgSize) }
    public var classCount: Int { numClasses }
}

/// timm's SwinTransformer: patch embedding (conv + LayerNorm, NHWC), stages of (shifted-)window
/// blocks with patch merging between them, final LayerNorm, average pool, Linear.
public final class SwinTransformer: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "patch_embed") public var patchEmbed: PatchEmbed
    @Child(key: "layers") public var layers: [SwinStage]
    @Child(key: "norm") var norm: LayerNorm
    @Child(key: "head") var head: PooledHead
    public let numFeatures: Int
    /// The input side the model was built for (height, width).
    public let imageSize: (Int, Int)

    public init(_ c: SwinConfig) throws {
        try c.validate()
        if c.dynamicImgSize == true || c.strictImgSize == false {
            throw ModelError("swin: dynamic_img_size / strict_img_size false is not supported (fixed input size)")
        }
        if let e = c.embedLayer, e.shortName != "PatchEmbed" { throw ModelError("swin: embed_layer \(e.name) is not supported (PatchEmbed)") }
        if let n = c.normLayer, n.shortName != "LayerNorm" { throw ModelError("swin: norm_layer \(n.name) is not supported (LayerNorm)") }
        if let w = c.weightInit, !["", "skip"].contains(w) { throw ModelError("swin: weight_init \(w) is not supported") }
        let pool = c.globalPool
        guard pool == "avg" else { throw ModelError("swin: global_pool \"\(pool)\" is not supported (avg)") }
        let depths = c.depths
        let heads = c.numHeads
        guard !depths.isEmpty, heads.count == depths.count else {
            throw ModelError("swin: num_heads \(heads) must give one head count per stage of depths \(depths)")
        }
        let size = c.imgSize, patch = c.patchSize
        guard patch > 0, size % patch == 0 else { throw ModelError("swin: img_size \(size) is not divisible by patch_size \(patch)") }
        let window = c.windowSize
        guard window > 0 else { throw ModelError("swin: window_size must be positive") }
        let embed = c.embedDim
        let dims = (0..<depths.count).map { embed << $0 }
        for (d, h) in zip(dims, heads) where c.headDim == nil && d % h != 0 {
            throw ModelError("swin: stage width \(d) is not divisible by \(h) heads")
        }
        imageSize = (size, size)
        numFeatures = dims.last!
        _patchEmbed.wrappedValue = PatchEmbed(patchSize: patch, inChannels: c.inChans, embedDim: embed, norm: LayerNorm(embed))
        let total = depths.reduce(0, +)
        let rate = Float(c.dropPathRate)
        var dpr = dropPathRates(rate, count: total)
        var grid = (size / patch, size / patch)
        var stages: [SwinStage] = []
        for (i, depth) in depths.enumerated() {
            let downsample: Module
            if i > 0 {
                downsample = PatchMerging(dim: dims[i - 1], outDim: dims[i])
                grid = ((grid.0 + 1) / 2, (grid.1 + 1) / 2)
            } else {
                downsample = Identity()
            }
            let blocks = (0..<depth).map { j in
                SwinBlock(dim: dims[i], resolution: grid, heads: heads[i], headDim: c.headDim, window: (window, window),
                          shifted: j % 2 == 1, alwaysPartition: c.alwaysPartition, mlpRatio: c.mlpRatio,
                          qkvBias: c.qkvBias, projDrop: Float(c.projDropRate), attnDrop: Float(c.attnDropRate),
                          dropPath: dpr[j])
            }
            dpr.removeFirst(depth)
            stages.append(SwinStage(downsample: downsample, blocks: blocks))
        }
        _layers.wrappedValue = stages
        _norm.wrappedValue = LayerNorm(numFeatures)
        _head.wrappedValue = PooledHead(numFeatures, classes: c.numClasses, dropout: Float(c.dropRate))
        super.init()
        for (_, m) in namedModules() {
            guard let l = m as? Linear else { continue }
            l.weight = Init.truncatedNormal(l.weight.shape, std: 0.02)
            if let b = l.bias { l.bias = Tensor.zeros(b.shape) }
        }
    }

    func embed(_ x: Tensor) -> Tensor {
        guard x.rank == 4, x.shape[1] == imageSize.0, x.shape[2] == imageSize.1 else {
            fail("SwinTransformer", "input \(x.shape) is not [B, \(imageSize.0), \(imageSize.1), C], the size the model was built for")
        }
        return patchEmbed.norm(patchEmbed.proj(x))
    }

    /// [B, h, w, C] after the final norm.
    public func forwardFeatures(_ x: Tensor) -> Tensor { norm(layers.reduce(embed(x)) { $1($0) }) }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = head.drop(features.mean(alongAxes: [1, 2]))
        return preLogits ? pooled : head.fc(pooled)
    }

    /// The patch embedding, then every block's output, [B, h, w, C].
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        var h = embed(x)
        var out: [(String, Tensor)] = [("patch_embed", h)]
        for (i, stage) in layers.enumerated() {
            h = stage.downsample(h)
            for (j, block) in stage.blocks.enumerated() {
                h = block(h)
                out.append(("layers.\(i).blocks.\(j)", h))
            }
        }
        return out
    }

    public func resetClassifier(numClasses: Int) { head.fc = numClasses > 0 ? Linear(numFeatures, numClasses) : Identity() }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// timm's checkpoint_filter_fn: drops the derived buffers (relative_position_index, attn_mask),
    /// maps the original Microsoft layout (downsample at the end of a stage, `head.`) onto timm's,
    /// and resamples relative-position tables to this model's windows (bicubic, as the Swin authors'
    /// loader; timm itself interpolates on a geometric grid).
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        let oldLayout = stateDict["layers.0.downsample.reduction.weight"] != nil
        let tables = Dictionary(uniqueKeysWithValues: namedModules().compactMap { key, m in
            (m as? WindowAttention).map { (key + ".relative_position_bias_table", $0) }
        })
        var out: [String: Tensor] = [:]
        for (key, value) in stateDict {
            if key.contains("relative_position_index") || key.contains("attn_mask") { continue }
            var k = key, v = value
            if oldLayout {
                let parts = k.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                if parts.count > 2, parts[0] == "layers", parts[2] == "downsample", let i = Int(parts[1]) {
                    k = (["layers", "\(i + 1)"] + parts[2...]).joined(separator: ".")
                }
                if k.hasPrefix("head."), !k.hasPrefix("head.fc.") { k = "head.fc." + k.dropFirst(5) }
            }
            if k.hasSuffix("relative_position_bias_table"), let attn = tables[k], v.rank == 2,
               v.shape != attn.relativePositionBiasTable.shape {
                v = SwinWindows.resampleTable(v, to: attn.window)
            }
            out[k] = v
        }
        return out
    }
}

// MARK: - Variants

extension SwinTransformer {
    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try SwinTransformer(config.decode(SwinConfig.self)) }

    /// A timm entrypoint: `model_args` as `swin_transformer.py` registers it.
    static func variant(_ name: String, _ arguments: [String: JSONValue]) -> ModelVariant {
        ModelVariant(name, family: "swin", inputSize: 224, arguments: arguments, build: build)
    }

    /// A small Swin for 32×32 images: patch 2 (16×16 tokens), windows of 4, three stages (16², 8², 4²).
    public static func nanoConfig(numClasses: Int = 10) -> SwinConfig {
        var c = SwinConfig(imgSize: 32, patchSize: 2, embedDim: 32, depths: [2, 2, 2], numHeads: [2, 4, 8], windowSize: 4,
                           numClasses: numClasses)
        c.dropPathRate = 0
        return c
    }

    public static let family = ModelFamily(
        name: "swin", reference: "timm 1.0.31 timm.models.swin_transformer.SwinTransformer",
        variants: [
            variant("swin_tiny_patch4_window7_224", ["patch_size": 4, "window_size": 7, "embed_dim": 96, "depths": [2, 2, 6, 2],
                                                     "num_heads": [3, 6, 12, 24]]),
            variant("swin_small_patch4_window7_224", ["patch_size": 4, "window_size": 7, "embed_dim": 96, "depths": [2, 2, 18, 2],
                                                      "num_heads": [3, 6, 12, 24]]),
            variant("swin_base_patch4_window7_224", ["patch_size": 4, "window_size": 7, "embed_dim": 128, "depths": [2, 2, 18, 2],
                                                     "num_heads": [4, 8, 16, 32]]),
            ModelVariant("swin_nano", family: "swin", inputSize: 32) { classes in
                try SwinTransformer(SwinTransformer.nanoConfig(numClasses: classes))
            },
        ],
        build: build)
}
