import Patchwork

/// Multi-head self-attention as timm's `Attention` (fused qkv Linear, then proj).
///
/// `forward(_:returnAttention:)` is the explicit path: it also hands back the
/// attention probabilities [B, heads, N, N] for the analyses. Setting
/// `recordsAttention` keeps the last ones in `lastAttentionMap` for callers that only
/// see the model from outside.
public final class Attention: Module, AttentionRecording {
    @Child(key: "qkv") public var qkv: Linear
    @Child(key: "attn_drop") public var attnDrop: Dropout
    @Child(key: "proj") public var proj: Linear
    @Child(key: "proj_drop") public var projDrop: Dropout
    public let heads: Int
    public let scale: Float
    public let recorder = AttentionRecorder()
    /// Where the tokens sit in the image ([N, 2], see `AttentionMap`); set by the model that knows its grid.
    public var tokenPositions: Tensor?

    public init(_ dim: Int, heads: Int, qkvBias: Bool = true, projBias: Bool = true, attentionDropout: Float = 0,
                projectionDropout: Float = 0, generator: Generator = .global) {
        require(dim % heads == 0, "Attention", "dim \(dim) is not divisible by \(heads) heads")
        _qkv.wrappedValue = Linear(dim, dim * 3, bias: qkvBias, generator: generator)
        _attnDrop.wrappedValue = Dropout(attentionDropout)
        _proj.wrappedValue = Linear(dim, dim, bias: projBias, generator: generator)
        _projDrop.wrappedValue = Dropout(projectionDropout)
        self.heads = heads
        scale = 1 / Float(dim / heads).squareRoot()
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { forward(x).output }

    /// x [B, N, C] → (output [B, N, C], attention probabilities [B, heads, N, N] when asked for).
    public func forward(_ x: Tensor, returnAttention: Bool = false) -> (output: Tensor, attention: Tensor?) {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        // [B, N, 3, heads, d] → [3, B, heads, N, d]
        let qkv = self.qkv(x).reshaped([b, n, 3, heads, c / heads]).permuted([2, 0, 3, 1, 4]).unbound(axis: 0)
        let (mixed, probabilities) = scaledDotProductAttention(
            q: qkv[0], k: qkv[1], v: qkv[2],
            scale: scale, dropout: attnDrop, recorder: recorder, queryPositions: tokenPositions, keyPositions: tokenPositions)
        return (projDrop(proj(mixed)), returnAttention ? probabilities : nil)
    }
}

/// Image to patch tokens: a conv with kernel = stride = patch size
/// (timm's PatchEmbed); [B, H, W, C] → [B, (H/p)·(W/p), D] by a reshape.
public final class PatchEmbed: Module {
    @Child(key: "proj") public var proj: Conv2d
    @Child(key: "norm") public var norm: Module
    public let patchSize: Int

    public init(patchSize: Int, inChannels: Int = 3, embedDim: Int, bias: Bool = true, norm: Module? = nil,
                generator: Generator = .global) {
        _proj.wrappedValue = Conv2d(inChannels, embedDim, kernelSize: patchSize, stride: patchSize, bias: bias, generator: generator)
        _norm.wrappedValue = norm ?? Identity()
        self.patchSize = patchSize
    }

    /// Tokens [B, N, D] and the token grid size.
    public func tokens(_ x: Tensor) -> (tokens: Tensor, grid: (Int, Int)) {
        guard x.rank == 4, x.shape[1] % patchSize == 0, x.shape[2] % patchSize == 0 else {
            fail("PatchEmbed", "input \(x.shape) is not [B, H, W, C] with H and W divisible by the patch size \(patchSize)")
        }
        let y = proj(x)
        let grid = (y.shape[1], y.shape[2])
        return (norm(y.reshaped([y.shape[0], grid.0 * grid.1, y.shape[3]])), grid)
    }

    public override func callAsFunction(_ x: Tensor) -> Tensor { tokens(x).tokens }
}
