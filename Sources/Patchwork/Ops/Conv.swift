/// 2-D convolution on channels-last maps, with its two backward ops.
///
/// `conv2d`, `conv2dInputGradient` and `conv2dWeightGradient` are each a
/// recorded op whose pullbacks are the other two (they are the three
/// bilinear maps ⟨g, conv(x, w)⟩ = ⟨x, inputGrad(g, w)⟩ = ⟨w, weightGrad(x, g)⟩),
/// so convolutions can be differentiated any number of times.
///
/// Layout: x [B, H, W, C], weight OHWI [O, kH, kW, C/groups], result
/// [B, Ho, Wo, O]; same arithmetic as torch.nn.functional.conv2d with
/// symmetric zero padding.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
                   padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1) -> Tensor {
    let geo = ConvGeometry(op: "conv2d", input: x.shape, weight: weight.shape, stride: stride, padding: padding,
                           dilation: dilation, groups: groups)
    if let bias, bias.shape != [geo.outChannels] {
        fail("conv2d", "bias shape \(bias.shape) does not match weight \(weight.shape) (expected [\(geo.outChannels)])")
    }
    // Depthwise with a channel multiplier k (O = k·C): output channel c·k + m reads
    // input channel c, so repeat each input channel k times and run the k = 1 kernel.
    if geo.groups == geo.inChannels && geo.inChannels > 1 && geo.outChannels != geo.inChannels {
        let k = geo.outChannels / geo.inChannels
        let repeated = x.unsqueezed(axis: 4)
            .expanded(to: [geo.batch, geo.height, geo.width, geo.inChannels, k])
            .reshaped([geo.batch, geo.height, geo.width, geo.outChannels])
        return conv2d(repeated, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                      groups: geo.outChannels)
    }
    FlopCounter.add(geo.flops)
    let xc = x.detached().contiguous(recordingGrad: false)
    let wc = weight.detached().contiguous(recordingGrad: false)
    let bc = bias?.detached().contiguous(recordingGrad: false)
    let out = Tensor(uninitializedShape: geo.outputShape)
    withExtendedLifetime((xc, wc, bc)) {
        ConvKernels.forward(xc.base, wc.base, bias: bc.map { UnsafePointer($0.base) }, out.base, geo)
    }
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    return Tensor.record("conv2d", out, inputs) { g in
        var grads: [Tensor?] = [
            x.requiresGrad ? conv2dInputGradient(g, weight: weight, inputSize: (geo.height, geo.width), stride: stride,
                                                 padding: padding, dilation: dilation, groups: groups) : nil,
            weight.requiresGrad ? conv2dWeightGradient(x, g, kernelSize: (geo.kernelH, geo.kernelW), stride: stride,
                                                       padding: padding, dilation: dilation, groups: groups) : nil,
        ]
        if let bias { grads.append(bias.requiresGrad ? g.sum(alongAxes: [0, 1, 2]) : nil) }
        return grads
    }
}

/// The gradient of `conv2d` with respect to its input: the transposed
/// convolution of `gradOutput` [B, Ho, Wo, O] with `weight` (OHWI), giving
/// [B, H, W, C] for an input of spatial size `inputSize`.
///
/// Also usable as a transposed convolution (PyTorch's conv_transpose2d with
/// the weight read as [O, kH, kW, C/groups]).
public func conv2dInputGradient(_ gradOutput: Tensor, weight: Tensor, inputSize: (Int, Int), stride: (Int, Int) = (1, 1),
                                padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1) -> Tensor {
    let op = "conv2d_input_gradient"
    let g = gradOutput
    guard g.rank == 4, weight.rank == 4 else {
        fail(op, "gradient \(g.shape) and weight \(weight.shape) must both have rank 4 ([B, Ho, Wo, O] and [O, kH, kW, C/groups])")
    }
    guard inputSize.0 >= 0 && inputSize.1 >= 0 else { fail(op, "input size \(inputSize) must not be negative") }
    let geo = ConvGeometry(op: op, input: [g.shape[0], inputSize.0, inputSize.1, weight.shape[3] * groups],
                           weight: weight.shape, stride: stride, padding: padding, dilation: dilation, groups: groups)
    FlopCounter.add(geo.flops)
    guard g.shape == geo.outputShape else {
        fail(op, "gradient of shape \(g.shape) does not match the output shape \(geo.outputShape) of weight \(weight.shape) on input size \(inputSize)")
    }
    let gc = g.detached().contiguous(recordingGrad: false)
    let wc = weight.detached().contiguous(recordingGrad: false)
    let dx = Tensor(uninitializedShape: geo.inputShape)
    withExtendedLifetime((gc, wc)) { ConvKernels.inputGradient(gc.base, wc.base, dx.base, geo) }
    return Tensor.record(op, dx, [g, weight]) { gg in
        [g.requiresGrad ? conv2d(gg, weight: weight, stride: stride, padding: padding, dilation: dilation, groups: groups) : nil,
         weight.requiresGrad ? conv2dWeightGradient(gg, g, kernelSize: (geo.kernelH, geo.kernelW), stride: stride,
                                                    padding: padding, dilation: dilation, groups: groups) : nil]
    }
}

/// The gradient of `conv2d` with respect to its weight, for input `x`
/// [B, H, W, C] and output gradient `gradOutput` [B, Ho, Wo, O]: an OHWI
/// tensor [O, kH, kW, C/groups].
public func conv2dWeightGradient(_ x: Tensor, _ gradOutput: Tensor, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
                                 padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1) -> Tensor {
    let op = "conv2d_weight_gradient"
    let g = gradOutput
    guard x.rank == 4, g.rank == 4 else {
        fail(op, "input \(x.shape) and gradient \(g.shape) must both have rank 4 ([B, H, W, C] and [B, Ho, Wo, O])")
    }
    guard groups >= 1, x.shape[3] % groups == 0 else {
        fail(op, "groups \(groups) does not divide the \(x.shape[3]) input channels of input \(x.shape)")
    }
    let geo = ConvGeometry(op: op, input: x.shape, weight: [g.shape[3], kernelSize.0, kernelSize.1, x.shape[3] / groups],
                           stride: stride, padding: padding, dilation: dilation, groups: groups)
    FlopCounter.add(geo.flops)
    guard g.shape == geo.outputShape else {
        fail(op, "gradient of shape \(g.shape) does not match the output shape \(geo.outputShape) of a \(kernelSize) kernel on input \(x.shape)")
    }
    let xc = x.detached().contiguous(recordingGrad: false)
    let gc = g.detached().contiguous(recordingGrad: false)
    let dw = Tensor(uninitializedShape: geo.weightShape)
    withExtendedLifetime((xc, gc)) { ConvKernels.weightGradient(xc.base, gc.base, dw.base, geo) }
    return Tensor.record(op, dw, [x, g]) { ww in
        [x.requiresGrad ? conv2dInputGradient(g, weight: ww, inputSize: (geo.height, geo.width), stride: stride,
                                              padding: padding, dilation: dilation, groups: groups) : nil,
         g.requiresGrad ? conv2d(x, weight: ww, stride: stride, padding: padding, dilation: dilation, groups: groups) : nil]
    }
}
