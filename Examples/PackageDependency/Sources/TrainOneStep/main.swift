// One SGD step of a registered model on random 32×32 images, through the library products only.
import Foundation
import Patchwork
import PatchworkNN
import PatchworkModels

let model = try Models.create("resnet_nano", numClasses: 10)
let images = Tensor.randomNormal([4, 32, 32, 3])   // channels-last [B, H, W, C]
let labels = [0, 1, 2, 3]
let optimizer = SGD(learningRate: 0.1, momentum: 0.9)

let (loss, grads) = valueAndGrad(model) { crossEntropy(logits: model.logits(images), labels: labels) }
optimizer.step(model, gradients: grads)
let after = crossEntropy(logits: model.logits(images), labels: labels)

print("Patchwork \(PatchworkVersion.string): resnet_nano, one SGD step, loss \(loss.item()) -> \(after.item())")
guard loss.item().isFinite, after.item().isFinite, !grads.isEmpty else {
    print("error: the step did not produce finite losses and gradients")
    exit(1)
}
