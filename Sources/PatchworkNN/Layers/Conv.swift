import Patchwork

/// 2-D convolution on [B, H, W, C] maps (torch.nn.Conv2d semantics).
///
/// The weight is kept as [out, kH, kW, in/groups] for channels-last kernels;
/// checkpoints hold PyTorch's [out, in/groups, kH, kW] and are converted on
/// load and save.
public final class Conv2d: Module {
    @Parameter(key: "weight", layout: .convWeight) public var weight: Tensor
    @OptionalParameter(key: "bias") public var bias: Tensor?
    public let stride: (Int, Int)
    public let padding: (Int, Int)
    public let dilation: (Int, Int)
    public let groups: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true,
                generator: Generator = .global) {
        require(inChannels % groups == 0 && outChannels % groups == 0, "Conv2d",
                "groups \(groups) must divide in (\(inChannels)) and out (\(outChannels)) channels")
        let fanIn = inChannels / groups * kernelSize.0 * kernelSize.1
        _weight.wrappedValue = Init.torchDefault([outChannels, kernelSize.0, kernelSize.1, inChannels / groups],
                                                            fanIn: fanIn, generator: generator)
        _bias.wrappedValue = bias ? Init.torchDefault([outChannels], fanIn: fanIn, generator: generator) : nil
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        super.init()
    }

    /// Square kernel, stride and padding.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true, generator: Generator = .global) {
        self.init(inChannels, outChannels, kernelSize: (kernelSize, kernelSize), stride: (stride, stride),
                  padding: (padding, padding), dilation: (dilation, dilation), groups: groups, bias: bias, generator: generator)
    }

    public var outChannels: Int { weight.shape[0] }
    public var kernelSize: (Int, Int) { (weight.shape[1], weight.shape[2]) }

    public override func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
}
