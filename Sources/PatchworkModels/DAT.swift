import Foundation
import Patchwork
import PatchworkNN

// The authors' original DAT (CVPR 2022), LeapLabTHU/DAT models/dat.py + models/dat_blocks.py
// at 566a593daf96efc3df58a1542e60b847b8b6f4ff (before DAT++). Channels-last throughout;
// the window helpers are Swin's (Swin.swift).
// Blocks → model → checkpoint filter → named variants.

// MARK: - Blocks

/// The authors' LayerNormProxy: a LayerNorm over channels (under the key `norm`).
public final class LayerNormProxy: Module {
    @Child(key: "norm") public var norm: LayerNorm
    init(_ dim: Int) { _norm.wrappedValue = LayerNorm(dim) }
    public override func callAsFunction(_ x: Tensor) -> Tensor { norm(x) }
}

/// nn.GELU as a module (a slot in a Sequential).
final class GELULayer: Module {
    override func callAsFunction(_ x: Tensor) -> Tensor { x.gelu() }
}

/// TransformerMLP's `chunk`: linear1 → GELU → dropout → linear2 → dropout.
final class DATMLPChunk: Module {
    @Child(key: "linear1") var linear1: Linear
    @Child(key: "drop1") var drop1: Dropout
    @Child(key: "linear2") var linear2: Linear
    @Child(key: "drop2") var drop2: Dropout
    init(_ dim: Int, hidden: Int, drop: Float) {
        _linear1.wrappedValue = Linear(dim, hidden); _drop1.wrappedValue = Dropout(drop)
        _linear2.wrappedValue = Linear(hidden, dim); _drop2.wrappedValue = Dropout(drop)
    }
    override func callAsFunction(_ x: Tensor) -> Tensor { drop2(linear2(drop1(linear1(x).gelu()))) }
}

/// TransformerMLP (keys `chunk.linear1`, `chunk.linear2`).
final class DATMLP: Module {
    @Child(key: "chunk") var chunk: DATMLPChunk
    init(_ dim: Int, expansion: Int, drop: Float) { _chunk.wrappedValue = DATMLPChunk(dim, hidden: dim * expansion, drop: drop) }
    override func callAsFunction(_ x: Tensor) -> Tensor { chunk(x) }
}

/// TransformerMLPWithConv: 1x1 conv → depthwise 3x3 → GELU → dropout → 1x1 conv → dropout.
final class DATConvMLP: Module {
    @Child(key: "linear1") var linear1: Conv2d
    @Child(key: "drop1") var drop1: Dropout
    @Child(key: "linear2") var linear2: Conv2d
    @Child(key: "drop2") var drop2: Dropout
    @Child(key: "dwc") var dwc: Conv2d
    init(_ dim: Int, expansion: Int, drop: Float) {
        let hidden = dim * expansion
        _linear1.wrappedValue = Conv2d(dim, hidden, kernelSize: 1); _drop1.wrappedValue = Dropout(drop)
        _linear2.wrappedValue = Conv2d(hidden, dim, kernelSize: 1); _drop2.wrappedValue = Dropout(drop)
        _dwc.wrappedValue = Conv2d(hidden, hidden, kernelSize: 3, padding: 1, groups: hidden)
    }
    override func callAsFunction(_ x: Tensor) -> Tensor { drop2(linear2(drop1(dwc(linear1(x)).gelu()))) }
}

/// LocalAttention (L): Swin window attention with a (2w−1)² bias table; its index table is a
/// stored buffer in the reference (persistent), kept here under the same key.
public class DATLocalAttention: Module, AttentionRecording {
    @Child(key: "proj_qkv") public var projQkv: Linear
    @Child(key: "proj_out") var projOut: Linear
    @Child(key: "proj_drop") var projDrop: Dropout
    @Child(key: "attn_drop") var attnDrop: Dropout
    @Parameter(key: "relative_position_bias_table") var relativePositionBiasTable: Tensor
    @Buffer(key: "relative_position_index", checkpointDType: .I64) var relativePositionIndex: Tensor
    public let heads: Int
    public let window: (Int, Int)
    public let shift: Int
    let scale: Float
    let index: [Int]
    public let recorder = AttentionRecorder()

    init(dim: Int, heads: Int, window: Int, attnDrop: Float, projDrop: Float, shift: Int = 0) {
        _projQkv.wrappedValue = Linear(dim, 3 * dim)
        self.heads = heads
        scale = 1 / Float(dim / heads).squareRoot()
        _projOut.wrappedValue = Linear(dim, dim)
        self.window = (window, window)
        _projDrop.wrappedValue = Dropout(projDrop)
        _attnDrop.wrappedValue = Dropout(attnDrop)
        _relativePositionBiasTable.wrappedValue = Init.truncatedNormal([(2 * window - 1) * (2 * window - 1), heads], std: 0.01)
        index = SwinWindows.relativePositionIndex((window, window))
        _relativePositionIndex.wrappedValue = Tensor(index.map(Float.init), shape: [window * window, window * window])
        self.shift = shift
    }

    func windowed(_ x: Tensor, mask: Tensor?) -> Tensor {
        let (b, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        guard h % window.0 == 0, w % window.1 == 0 else {
            fail("DAT LocalAttention", "input \(x.shape) is not a multiple of the window \(window.0)x\(window.1)")
        }
        let windows = WindowPartition.split(x, window)
        let mixed = SwinWindows.attend(windows.reshaped([windows.shape[0], window.0 * window.1, windows.shape[3]]), qkv: projQkv,
                                       heads: heads, scale: scale, table: relativePositionBiasTable, index: index, mask: mask,
                                       dropout: attnDrop, recorder: recorder,
                                       positions: WindowPartition.positions(batch: b, image: (h, w), window, shift: (shift, shift)))
        return WindowPartition.merge(projDrop(projOut(mixed)), window, image: (h, w))
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { windowed(x, mask: nil) }
}

/// ShiftWindowAttention (S): roll by −ceil(w/2), window attention with the stored 0/−100 mask, roll back.
public final class DATShiftWindowAttention: DATLocalAttention {
    @Buffer(key: "attn_mask") var attnMask: Tensor

    init(dim: Int, heads: Int, window: Int, attnDrop: Float, projDrop: Float, shift: Int, fmap: (Int, Int)) {
        _attnMask.wrappedValue = SwinWindows.shiftMask(height: fmap.0, width: fmap.1, window: (window, window), shift: (shift, shift))
        super.init(dim: dim, heads: heads, window: window, attnDrop: attnDrop, projDrop: projDrop, shift: shift)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let y = windowed(x.rolled(shifts: [-shift, -shift], axes: [1, 2]), mask: attnMask)
        return y.rolled(shifts: [shift, shift], axes: [1, 2])
    }
}

/// DAttentionBaseline (D): deformable attention. Queries from a 1x1 conv; an offset network per
/// group moves reference points; keys and values are 1x1 convs of the normed map bilinearly sampled
/// there; the bias is `rpe_table` grid-sampled at the query-to-sample displacement.
public final class DATDeformableAttention: Module, AttentionRecording {
    @Child(key: "conv_offset") var convOffset: Sequential
    @Child(key: "proj_q") var projQ: Conv2d
    @Child(key: "proj_k") var projK: Conv2d
    @Child(key: "proj_v") var projV: Conv2d
    @Child(key: "proj_out") var projOut: Conv2d
    @Child(key: "proj_drop") var projDrop: Dropout
    @Child(key: "attn_drop") var attnDrop: Dropout
    @OptionalParameter(key: "rpe_table") var rpeTable: Tensor?
    @Child(key: "rpe_table") var rpeConv: Conv2d? = nil
    public let heads: Int
    public let groups: Int
    let headChannels: Int
    let scale: Float
    let offsetRangeFactor: Float
    /// The map size the rpe table was built for.
    public let fmap: (Int, Int)
    public let recorder = AttentionRecorder()

    init(fmap: (Int, Int), heads: Int, headChannels: Int, groups: Int, attnDrop: Float, projDrop: Float, stride: Int,
         offsetRangeFactor: Float, usePe: Bool, dwcPe: Bool, stageIndex: Int) {
        let nc = heads * headChannels, gc = nc / groups
        let kk = [9, 7, 5, 3][stageIndex]
        _convOffset.wrappedValue = Sequential([
            Conv2d(gc, gc, kernelSize: kk, stride: stride, padding: kk / 2, groups: gc),
            LayerNormProxy(gc),
            GELULayer(),
            Conv2d(gc, 2, kernelSize: 1, bias: false),
        ])
        _projQ.wrappedValue = Conv2d(nc, nc, kernelSize: 1)
        _projK.wrappedValue = Conv2d(nc, nc, kernelSize: 1)
        _projV.wrappedValue = Conv2d(nc, nc, kernelSize: 1)
        _projOut.wrappedValue = Conv2d(nc, nc, kernelSize: 1)
        _projDrop.wrappedValue = Dropout(projDrop)
        _attnDrop.wrappedValue = Dropout(attnDrop)
        if usePe && dwcPe {
            _rpeTable.wrappedValue = nil
            _rpeConv = Child<Conv2d?>(wrappedValue: Conv2d(nc, nc, kernelSize: 3, padding: 1, groups: nc), key: "rpe_table")
        } else {
            _rpeTable.wrappedValue = usePe ? Init.truncatedNormal([heads, 2 * fmap.0 - 1, 2 * fmap.1 - 1], std: 0.01) : nil
            _rpeConv = Child<Conv2d?>(wrappedValue: nil, key: "rpe_table")
        }
        self.heads = heads
        self.groups = groups
        self.headChannels = headChannels
        scale = 1 / Float(headChannels).squareRoot()
        self.offsetRangeFactor = offsetRangeFactor
        self.fmap = fmap
    }

    /// Pixel centres of an h×w grid as (y, x) in [-1, 1]: [h, w, 2].
    static func referencePoints(_ h: Int, _ w: Int) -> Tensor {
        var values = [Float]()
        values.reserveCapacity(h * w * 2)
        for i in 0..<h {
            for j in 0..<w {
                values.append((Float(i) + 0.5) / Float(h) * 2 - 1)
                values.append((Float(j) + 0.5) / Float(w) * 2 - 1)
            }
        }
        return Tensor(values, shape: [h, w, 2])
    }

    /// [B, H, W, C] → [B·g, H, W, C/g].
    func splitGroups(_ x: Tensor) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return x.reshaped([b, h, w, groups, c / groups]).permuted([0, 3, 1, 2, 4]).reshaped([b * groups, h, w, c / groups])
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let gc = c / groups, gh = heads / groups
        let q = projQ(x)
        var offset = convOffset(splitGroups(q))                      // [B·g, Hk, Wk, 2] (y, x)
        let (hk, wk) = (offset.shape[1], offset.shape[2])
        let ns = hk * wk
        if offsetRangeFactor > 0 {
            offset = offset.tanh() * Tensor([1 / Float(hk), 1 / Float(wk)]) * offsetRangeFactor
        }
        let reference = DATDeformableAttention.referencePoints(hk, wk).unsqueezed(axis: 0)
        let pos = offsetRangeFactor >= 0 ? offset + reference : (offset + reference).tanh()
        let sampled = gridSample(splitGroups(x), grid: pos.flipped(axes: [3]), alignCorners: true)  // [B·g, Hk, Wk, gc]
        let tokens = sampled.reshaped([b, groups, ns, gc]).permuted([0, 2, 1, 3]).reshaped([b, 1, ns, c])
        let k = projK(tokens).reshaped([b, ns, heads, headChannels]).permuted([0, 2, 1, 3])
        let v = projV(tokens).reshaped([b, ns, heads, headChannels]).permuted([0, 2, 1, 3])
        let qh = q.reshaped([b, h * w, heads, headChannels]).permuted([0, 2, 1, 3])
        var bias: Tensor?                                              // [B, heads, HW, Ns]
        if let rpe = rpeTable {
            guard rpe.shape[1] == 2 * h - 1, rpe.shape[2] == 2 * w - 1 else {
                fail("DAT DAttention", "input \(x.shape) does not match the rpe table \(rpe.shape) (built for \(fmap.0)x\(fmap.1))")
            }
            let table = rpe.reshaped([groups, gh, 2 * h - 1, 2 * w - 1]).permuted([0, 2, 3, 1]).unsqueezed(axis: 0)
                .expanded(to: [b, groups, 2 * h - 1, 2 * w - 1, gh]).reshaped([b * groups, 2 * h - 1, 2 * w - 1, gh])
            let queries = DATDeformableAttention.referencePoints(h, w).reshaped([1, h * w, 1, 2])
            let displacement = (queries - pos.reshaped([b * groups, 1, ns, 2])) * 0.5  // [B·g, HW, Ns, 2]
            let sampledBias = gridSample(table, grid: displacement.flipped(axes: [3]), alignCorners: true)  // [B·g, HW, Ns, gh]
            bias = sampledBias.reshaped([b, groups, h * w, ns, gh]).permuted([0, 1, 4, 2, 3]).reshaped([b, heads, h * w, ns])
        }
        let (mixed, probabilities) = scaledDotProductAttention(q: qh, k: k, v: v, scale: scale, bias: bias, dropout: attnDrop)
        // Recorded here rather than by scaledDotProductAttention: each group of heads has its own
        // sampled keys, so the map is per (image, group), [B·g, heads/g, HW, Ns].
        // Points in [-1, 1] (align_corners=True: ±1 are the outer pixel centres) as image fractions.
        func fractions(_ p: Tensor) -> Tensor { p * Tensor([Float(h - 1) / Float(2 * h), Float(w - 1) / Float(2 * w)]) + 0.5 }
        recorder.record(probabilities.reshaped([b * groups, gh, h * w, ns]),
                        queryPositions: AttentionMap.gridPositions(height: h, width: w),
                        keyPositions: fractions(pos).reshaped([b * groups, ns, 2]),
                        extras: ["sampled_positions": fractions(pos).reshaped([b, groups, hk, wk, 2]),
                                 "reference_positions": fractions(reference).reshaped([hk, wk, 2])])
        var out = mixed.reshaped([b, h, w, c])
        if let rpeConv { out = out + rpeConv(q) }
        return projDrop(projOut(out))
    }
}

/// TransformerStage: optional 1x1 projection, then per block x + attn(LN x), x + MLP(LN x).
public final class DATStage: Module {
    @Child(key: "proj") var proj: Module
    @Child(key: "layer_norms") var layerNorms: [LayerNormProxy]
    @Child(key: "mlps") var mlps: [Module]
    @Child(key: "attns") public var attns: [Module]
    @Child(key: "drop_path") var dropPath: [DropPath]

    init(proj: Module, layerNorms: [LayerNormProxy], mlps: [Module], attns: [Module], dropPath: [DropPath]) {
        _proj.wrappedValue = proj; _layerNorms.wrappedValue = layerNorms; _mlps.wrappedValue = mlps; _attns.wrappedValue = attns; _dropPath.wrappedValue = dropPath
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        var h = proj(x)
        for d in 0..<attns.count {
            h = h + dropPath[d](attns[d](layerNorms[2 * d](h)))
            h = h + dropPath[d](mlps[d](layerNorms[2 * d + 1](h)))
        }
        return h
    }
}

// MARK: - Model

/// The config of the authors' `DAT(...)`, under its argument names.
public struct DATConfig: Codable, Sendable {
    public var imgSize: Int = 224
    public var patchSize: Int = 4
    public var numClasses: Int = 1000
    public var expansion: Int = 4
    public var dimStem: Int = 96
    public var dims: [Int] = [96, 192, 384, 768]
    public var depths: [Int] = [2, 2, 6, 2]
    public var heads: [Int] = [3, 6, 12, 24]
    public var windowSizes: [Int] = [7, 7, 7, 7]
    public var dropRate: Double = 0
    public var attnDropRate: Double = 0
    public var dropPathRate: Double = 0
    public var strides: [Int] = [-1, -1, -1, -1]
    public var offsetRangeFactor: [Double] = [1, 2, 3, 4]
    public var stageSpec: [[String]] = [["L", "D"], ["L", "D"], ["L", "D", "L", "D", "L", "D"], ["L", "D"]]
    public var groups: [Int] = [-1, -1, 3, 6]
    public var usePes: [Bool] = [false, false, false, false]
    public var dwcPes: [Bool] = [false, false, false, false]
    public var srRatios: [Int] = [-1, -1, -1, -1]
    public var fixedPes: [Bool] = [false, false, false, false]
    public var noOffs: [Bool] = [false, false, false, false]
    public var nsPerPts: [Int] = [4, 4, 4, 4]
    public var useDwcMlps: [Bool] = [false, false, false, false]
    public var useConvPatches: Bool = false

    public init() {}

    /// Absent (or null) arguments keep the reference's defaults above.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imgSize = try c.value(.imgSize, imgSize)
        patchSize = try c.value(.patchSize, patchSize)
        numClasses = try c.value(.numClasses, numClasses)
        expansion = try c.value(.expansion, expansion)
        dimStem = try c.value(.dimStem, dimStem)
        dims = try c.value(.dims, dims)
        depths = try c.value(.depths, depths)
        heads = try c.value(.heads, heads)
        windowSizes = try c.value(.windowSizes, windowSizes)
        dropRate = try c.value(.dropRate, dropRate)
        attnDropRate = try c.value(.attnDropRate, attnDropRate)
        dropPathRate = try c.value(.dropPathRate, dropPathRate)
        strides = try c.value(.strides, strides)
        offsetRangeFactor = try c.value(.offsetRangeFactor, offsetRangeFactor)
        stageSpec = try c.value(.stageSpec, stageSpec)
        groups = try c.value(.groups, groups)
        usePes = try c.value(.usePes, usePes)
        dwcPes = try c.value(.dwcPes, dwcPes)
        srRatios = try c.value(.srRatios, srRatios)
        fixedPes = try c.value(.fixedPes, fixedPes)
        noOffs = try c.value(.noOffs, noOffs)
        nsPerPts = try c.value(.nsPerPts, nsPerPts)
        useDwcMlps = try c.value(.useDwcMlps, useDwcMlps)
        useConvPatches = try c.value(.useConvPatches, useConvPatches)
    }
}

extension DATConfig: ModelConfig {
    public func validate() throws {
        let check = ConfigCheck(family: "dat")
        try check.size(imgSize, "img_size")
        try check.size(patchSize, "patch_size")
        try check.classes(numClasses)
        try check.width(expansion, "expansion")
        try check.width(dimStem, "dim_stem")
        for (list, field) in [(dims, "dims"), (depths, "depths"), (heads, "heads"), (windowSizes, "window_sizes"),
                              (strides, "strides"), (groups, "groups")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        try check.perStage(offsetRangeFactor, "offset_range_factor", stages: 4, as: "the reference's four stages")
        try check.depths(depths, "depths")
        for i in 0..<4 {
            try check.width(dims[i], "dims[\(i)]")
            try check.heads(heads[i], "heads[\(i)]", divide: dims[i], "dims[\(i)]")
            try check.size(windowSizes[i], "window_sizes[\(i)]")
            try check.finite(offsetRangeFactor[i], "offset_range_factor[\(i)]")
            // -1 marks a value the stage does not use (its local-attention stages), as in the reference.
            guard strides[i] == -1 || (1...ConfigLimits.maxImageSize).contains(strides[i]) else {
                throw check.error("strides[\(i)]", strides[i], "must be -1 (unused) or at least 1")
            }
            guard groups[i] == -1 || (groups[i] >= 1 && heads[i] % groups[i] == 0) else {
                throw check.error("groups[\(i)]", groups[i], "must be -1 (unused) or divide heads[\(i)] \(heads[i])")
            }
        }
        // The reference's default stage_spec fits only the default depths (2, 2, 6, 2).
        let specs = stageSpec
        try check.perStage(specs, "stage_spec", stages: 4, as: "the reference's four stages")
        for i in 0..<4 where specs[i].count != depths[i] {
            throw check.error("stage_spec[\(i)]", specs[i], "must name one block per layer of depths[\(i)] \(depths[i])")
        }
        for (list, field) in [(usePes, "use_pes"), (dwcPes, "dwc_pes"), (fixedPes, "fixed_pes"), (noOffs, "no_offs"),
                              (useDwcMlps, "use_dwc_mlps")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        for (list, field) in [(srRatios, "sr_ratios"), (nsPerPts, "ns_per_pts")] {
            try check.perStage(list, field, stages: 4, as: "the reference's four stages")
        }
        try check.rates([(dropRate, "drop_rate"), (attnDropRate, "attn_drop_rate"), (dropPathRate, "drop_path_rate")])
        var estimate = ConfigCheck.table(dims[3], numClasses)
        for i in 0..<4 {
            estimate += ConfigCheck.transformer(width: dims[i], depth: depths[i], mlpRatio: Double(expansion))
                + Double(depths[i] * heads[i]) * Double((2 * windowSizes[i] - 1) * (2 * windowSizes[i] - 1))
        }
        let side = imgSize / patchSize
        estimate += Double(heads.max()!) * Double(side) * Double(side) * 4  // deformable stages' position tables
        try check.parameters(estimate, "dims, depths, expansion, heads, window_sizes, img_size / patch_size, num_classes")
    }
    public var expectedInput: ExpectedInput { ExpectedInput(channels: 3, side: imgSize) }
    public var classCount: Int { numClasses }
}

/// The authors' DAT: conv stem + LN, four stages of L / S / D blocks, 2x2/s2 conv + LN between stages,
/// LN, average pool, Linear.
public final class DAT: Module, ImageClassifier, CheckpointFiltering {
    @Child(key: "patch_proj") var patchProj: Sequential
    @Child(key: "stages") public var stages: [DATStage]
    @Child(key: "down_projs") var downProjs: [Sequential]
    @Child(key: "cls_norm") var clsNorm: LayerNormProxy
    @Child(key: "cls_head") var clsHead: Module
    public let imageSize: Int
    let width: Int

    public init(_ c: DATConfig) throws {
        try c.validate()
        let dims = c.dims
        let depths = c.depths
        let heads = c.heads
        let windows = c.windowSizes
        let strides = c.strides
        let factors = c.offsetRangeFactor
        let specs = c.stageSpec
        let groups = c.groups
        let usePes = c.usePes
        let dwcPes = c.dwcPes
        let fixedPes = c.fixedPes
        let noOffs = c.noOffs
        let dwcMlps = c.useDwcMlps
        let lists: [(String, Int)] = [("dims", dims.count), ("depths", depths.count), ("heads", heads.count),
                                      ("window_sizes", windows.count), ("strides", strides.count),
                                      ("offset_range_factor", factors.count), ("stage_spec", specs.count),
                                      ("groups", groups.count), ("use_pes", usePes.count), ("dwc_pes", dwcPes.count),
                                      ("fixed_pes", fixedPes.count), ("no_offs", noOffs.count), ("use_dwc_mlps", dwcMlps.count)]
        for (name, n) in lists where n < 4 { throw ModelError("dat: \(name) needs one entry per stage (4), got \(n)") }
        let size = c.imgSize, patch = c.patchSize
        let stem = c.dimStem
        let expansion = c.expansion
        let convPatches = c.useConvPatches
        guard patch > 0, size / patch >= 8 else { throw ModelError("dat: img_size \(size) / patch_size \(patch) leaves no room for 4 stages") }
        let drop = Float(c.dropRate), attnDrop = Float(c.attnDropRate)
        let total = depths.prefix(4).reduce(0, +)
        let rate = Float(c.dropPathRate)
        let dpr = dropPathRates(rate, count: total)

        _patchProj.wrappedValue = Sequential([
            convPatches ? Conv2d(3, stem, kernelSize: 7, stride: patch, padding: 3) : Conv2d(3, stem, kernelSize: patch, stride: patch),
            LayerNormProxy(stem),
        ])
        if convPatches && (size % patch != 0 || (size / patch) % 8 != 0) {
            // The reference sizes its masks and rpe tables from img_size // patch_size halved by floor division,
            // while the 7x7 stem and the 3x3/s2 downsampling round up: other sizes do not run there.
            throw ModelError("dat: use_conv_patches needs img_size / patch_size to be a multiple of 8 (got \(size) / \(patch))")
        }
        var fmap = size / patch
        var built: [DATStage] = []
        var blockIndex = 0
        for i in 0..<4 {
            let dimIn = i == 0 ? stem : dims[i - 1] * 2
            let dim = dims[i]
            guard heads[i] > 0, dim % heads[i] == 0 else { throw ModelError("dat: stage \(i) width \(dim) is not divisible by \(heads[i]) heads") }
            if i > 0 && dims[i] != 2 * dims[i - 1] {
                throw ModelError("dat: dims \(dims): each stage must be twice as wide as the one before (the reference's stage input width is dims[i-1]*2)")
            }
            guard specs[i].count == depths[i] else {
                throw ModelError("dat: stage_spec[\(i)] \(specs[i]) must have depths[\(i)] = \(depths[i]) entries")
            }
            var attns: [Module] = []
            for spec in specs[i] {
                switch spec {
                case "L", "S":
                    let w = windows[i]
                    guard w > 0, fmap % w == 0 else {
                        throw ModelError("dat: stage \(i) map \(fmap)x\(fmap) is not a multiple of window_sizes[\(i)] = \(w)")
                    }
                    if spec == "L" {
                        attns.append(DATLocalAttention(dim: dim, heads: heads[i], window: w, attnDrop: attnDrop, projDrop: drop))
                    } else {
                        let shift = (w + 1) / 2
                        guard shift < w else { throw ModelError("dat: stage \(i) window \(w) is too small to shift (S needs ≥ 2)") }
                        attns.append(DATShiftWindowAttention(dim: dim, heads: heads[i], window: w, attnDrop: attnDrop, projDrop: drop,
                                                             shift: shift, fmap: (fmap, fmap)))
                    }
                case "D":
                    let g = groups[i]
                    guard g > 0, heads[i] % g == 0 else { throw ModelError("dat: stage \(i) groups \(g) must divide \(heads[i]) heads") }
                    guard strides[i] > 0 else { throw ModelError("dat: stage \(i) stride \(strides[i]) must be positive for D blocks") }
                    if usePes[i] && !dwcPes[i] && fixedPes[i] {
                        throw ModelError("dat: fixed_pes is not supported (the reference's forward reads a missing attribute n_sample)")
                    }
                    if noOffs[i] { throw ModelError("dat: no_offs is not supported (the reference's forward calls the missing Tensor.fill)") }
                    attns.append(DATDeformableAttention(
                        fmap: (fmap, fmap), heads: heads[i], headChannels: dim / heads[i], groups: g, attnDrop: attnDrop,
                        projDrop: drop, stride: strides[i], offsetRangeFactor: Float(factors[i]), usePe: usePes[i],
                        dwcPe: dwcPes[i], stageIndex: i))
                default:
                    throw ModelError("dat: stage_spec entry \"\(spec)\" is not supported (L, S, D)")
                }
            }
            let mlps: [Module] = (0..<depths[i]).map { _ in
                dwcMlps[i] ? DATConvMLP(dim, expansion: expansion, drop: drop) : DATMLP(dim, expansion: expansion, drop: drop)
            }
            built.append(DATStage(
                proj: dimIn != dim ? Conv2d(dimIn, dim, kernelSize: 1) : Identity(),
                layerNorms: (0..<(2 * depths[i])).map { _ in LayerNormProxy(dim) },
                mlps: mlps, attns: attns,
                dropPath: (0..<depths[i]).map { DropPath(dpr[blockIndex + $0]) }))
            blockIndex += depths[i]
            fmap /= 2
        }
        _stages.wrappedValue = built
        _downProjs.wrappedValue = (0..<3).map { i in
            Sequential([
                convPatches ? Conv2d(dims[i], dims[i + 1], kernelSize: 3, stride: 2, padding: 1, bias: false)
                            : Conv2d(dims[i], dims[i + 1], kernelSize: 2, stride: 2, bias: false),
                LayerNormProxy(dims[i + 1]),
            ])
        }
        _clsNorm.wrappedValue = LayerNormProxy(dims[3])
        let classes = c.numClasses
        _clsHead.wrappedValue = classes > 0 ? Linear(dims[3], classes) : Identity()
        imageSize = size
        width = dims[3]
        super.init()
    }

    func checkInput(_ x: Tensor) {
        guard x.rank == 4, x.shape[1] == imageSize, x.shape[2] == imageSize else {
            fail("DAT", "input \(x.shape) is not [B, \(imageSize), \(imageSize), C], the size the model was built for")
        }
    }

    /// [B, h, w, C] after cls_norm.
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        checkInput(x)
        var h = patchProj(x)
        for i in 0..<4 {
            h = stages[i](h)
            if i < 3 { h = downProjs[i](h) }
        }
        return clsNorm(h)
    }

    public func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor {
        let pooled = features.mean(alongAxes: [1, 2])
        return preLogits ? pooled : clsHead(pooled)
    }

    /// The stem, then each stage's output and each downsampling's output, [B, h, w, C].
    public func forwardIntermediates(_ x: Tensor) -> [(name: String, value: Tensor)] {
        checkInput(x)
        var h = patchProj(x)
        var out: [(String, Tensor)] = [("patch_proj", h)]
        for i in 0..<4 {
            h = stages[i](h)
            out.append(("stages.\(i)", h))
            if i < 3 {
                h = downProjs[i](h)
                out.append(("down_projs.\(i)", h))
            }
        }
        return out
    }

    public func resetClassifier(numClasses: Int) { clsHead = numClasses > 0 ? Linear(width, numClasses) : Identity() }

    public override func callAsFunction(_ x: Tensor) -> Tensor { logits(x) }

    /// As the authors' `load_pretrained`: derived buffers (relative_position_index, attn_mask) are this
    /// model's own, and relative-position tables (relative_position_bias_table, rpe_table) of another
    /// size are resampled bicubically (F.interpolate, align_corners=False).
    public func checkpointFilter(_ stateDict: [String: Tensor]) -> [String: Tensor] {
        let own = self.stateDict()
        var out: [String: Tensor] = [:]
        for (key, value) in stateDict {
            if key.hasSuffix("relative_position_index") || key.hasSuffix("attn_mask") {
                if let mine = own[key] { out[key] = mine }
                continue
            }
            var v = value
            if let mine = own[key], mine.shape != v.shape {
                if key.hasSuffix("relative_position_bias_table"), v.rank == 2 {
                    let side = (Int(Double(mine.shape[0]).squareRoot().rounded()) + 1) / 2
                    v = SwinWindows.resampleTable(v, to: (side, side))
                } else if key.hasSuffix("rpe_table"), v.rank == 3 {
                    v = resize(v.permuted([1, 2, 0]).unsqueezed(axis: 0), size: (mine.shape[1], mine.shape[2]),
                               mode: .bicubic, alignCorners: false).squeezed(axes: [0]).permuted([2, 0, 1])
                }
            }
            out[key] = v
        }
        return out
    }
}

// MARK: - Variants

extension DAT {
    /// configs/dat_{tiny,small,base}.yaml at the fixture's commit.
    static func config(dimStem: Int, dims: [Int], depths: [Int], heads: [Int], groups: [Int], dropPath: Double,
                       numClasses: Int = 1000) -> DATConfig {
        var c = DATConfig()
        c.imgSize = 224; c.patchSize = 4; c.numClasses = numClasses; c.expansion = 4
        c.dimStem = dimStem; c.dims = dims; c.depths = depths; c.heads = heads
        c.stageSpec = [["L", "S"], ["L", "S"], Array(repeating: ["L", "D"], count: depths[2] / 2).flatMap { $0 }, ["L", "D"]]
        c.windowSizes = [7, 7, 7, 7]; c.groups = groups
        c.usePes = [false, false, true, true]; c.dwcPes = [false, false, false, false]
        c.strides = [-1, -1, 1, 1]; c.srRatios = [-1, -1, -1, -1]; c.offsetRangeFactor = [-1, -1, 2, 2]
        c.noOffs = [false, false, false, false]; c.fixedPes = [false, false, false, false]
        c.useDwcMlps = [false, false, false, false]; c.useConvPatches = false
        c.dropRate = 0; c.attnDropRate = 0; c.dropPathRate = dropPath
        return c
    }

    /// A small DAT for 32×32 images: patch 2 (16×16 map), L/S windows of 4 in stages 1–2,
    /// L (window 2) + D in stages 3–4.
    public static func nanoConfig(numClasses: Int = 10) -> DATConfig {
        var c = config(dimStem: 16, dims: [16, 32, 64, 128], depths: [2, 2, 2, 2], heads: [1, 2, 4, 8], groups: [-1, -1, 2, 4],
                       dropPath: 0, numClasses: numClasses)
        c.imgSize = 32; c.patchSize = 2
        c.windowSizes = [4, 4, 2, 2]
        return c
    }

    @Sendable static func build(_ config: JSONValue) throws -> ImageClassifier { try DAT(config.decode(DATConfig.self)) }

    /// The DAT arguments of one of the authors' configs/*.yaml.
    static func variant(_ name: String, _ config: DATConfig) -> ModelVariant {
        ModelVariant(name, family: "dat", inputSize: 224, arguments: JSONValue(encoding: config).object!, build: build)
    }

    public static let family = ModelFamily(
        name: "dat", reference: "github LeapLabTHU/DAT@566a593daf96efc3df58a1542e60b847b8b6f4ff models/dat.py DAT",
        variants: [
            variant("dat_tiny", config(dimStem: 96, dims: [96, 192, 384, 768], depths: [2, 2, 6, 2], heads: [3, 6, 12, 24],
                                       groups: [-1, -1, 3, 6], dropPath: 0.2)),
            variant("dat_small", config(dimStem: 96, dims: [96, 192, 384, 768], depths: [2, 2, 18, 2], heads: [3, 6, 12, 24],
                                        groups: [-1, -1, 3, 6], dropPath: 0.3)),
            variant("dat_base", config(dimStem: 128, dims: [128, 256, 512, 1024], depths: [2, 2, 18, 2], heads: [4, 8, 16, 32],
                                       groups: [-1, -1, 4, 8], dropPath: 0.5)),
            ModelVariant("dat_nano", family: "dat", inputSize: 32) { classes in try DAT(DAT.nanoConfig(numClasses: classes)) },
        ],
        build: build)
}
