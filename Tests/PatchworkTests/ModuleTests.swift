import Foundation
import XCTest
import Patchwork
import PatchworkNN
import PatchworkModels

final class ModuleTests: XCTestCase {
    final class Block: Module {
        @Child(key: "fc1") var fc1 = Linear(4, 8)
        @Child(key: "norm") var norm = LayerNorm(8)
        @Child(key: "proj") var output = Linear(8, 4, bias: false)
        override func callAsFunction(_ x: Tensor) -> Tensor { output(norm(fc1(x)).gelu()) }
    }

    final class Net: Module {
        @Child(key: "patch_embed") var patchEmbed = Conv2d(3, 4, kernelSize: 2, stride: 2)
        @Child(key: "blocks") var blocks = [Block(), Block()]
        @Child(key: "bn") var bn = BatchNorm(4)
        @Child(key: "head") var head: Linear? = Linear(4, 2)
        @Parameter(key: "cls_token") var clsToken = Tensor.zeros([1, 1, 4])
        override func callAsFunction(_ x: Tensor) -> Tensor {
            let f = bn(patchEmbed(x)).mean(alongAxes: [1, 2])
            return head!(blocks[1](blocks[0](f)))
        }
    }

    func testKeysFollowTheReferenceNaming() {
        let keys = Set(Net().stateDict().keys)
        XCTAssertEqual(keys, [
            "patch_embed.weight", "patch_embed.bias",
            "blocks.0.fc1.weight", "blocks.0.fc1.bias", "blocks.0.norm.weight", "blocks.0.norm.bias", "blocks.0.proj.weight",
            "blocks.1.fc1.weight", "blocks.1.fc1.bias", "blocks.1.norm.weight", "blocks.1.norm.bias", "blocks.1.proj.weight",
            "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
            "head.weight", "head.bias", "cls_token",
        ])
        let net = Net()
        XCTAssertEqual(net.trainableParameters().count, 17)
        XCTAssertEqual(net.stateDict()["patch_embed.weight"]?.shape, [4, 3, 2, 2], "conv weights leave in PyTorch's OIHW layout")
        net.blocks[0].freeze()
        XCTAssertEqual(net.trainableParameters().count, 12)
        net.eval()
        XCTAssertFalse(net.blocks[1].norm.training)
    }

    /// The cached tree stays true: after replacing the classifier and a block,
    /// freezing a part and loading a state dict, the optimizer steps exactly the
    /// module's live, unfrozen parameters, and nothing else.
    func testTheCachedTreeStaysTrueThroughReplaceFreezeAndLoad() throws {
        let net = Net()
        XCTAssertEqual(net.parameters().count, 17)  // builds the cache
        let newHead = Linear(4, 3), newBlock = Block()
        try net.update(modules: ["head": newHead, "blocks.1": newBlock])
        XCTAssertTrue(net.head === newHead)
        XCTAssertTrue(net.blocks[1] === newBlock)
        XCTAssertEqual(net.stateDict()["head.weight"]?.shape, [3, 4])
        XCTAssertTrue(net.namedModules().contains { $0.0 == "blocks.1" && $0.1 === newBlock })

        // A direct assignment inside the model keeps the cache true as well.
        let other = Linear(4, 5)
        net.head = other
        XCTAssertEqual(net.stateDict()["head.bias"]?.shape, [5])
        try net.update(modules: ["head": newHead])

        // Refused replacements change nothing and name the key.
        XCTAssertThrowsError(try net.update(modules: ["blocks.0": Linear(4, 4), "head": Linear(4, 7)])) { error in
            XCTAssertTrue("\(error)".contains("blocks.0"), "\(error)")
        }
        XCTAssertThrowsError(try net.update(modules: ["tail": Linear(4, 4)])) { error in
            XCTAssertTrue("\(error)".contains("tail"), "\(error)")
        }
        XCTAssertTrue(net.head === newHead)

        net.blocks[0].freeze()
        let source = Net()
        try source.update(modules: ["head": Linear(4, 3)])
        try net.loadStateDict(source.stateDict())
        XCTAssertEqual(net.head!.weight.scalars, source.head!.weight.scalars)

        let x = Tensor.randomNormal([2, 4, 4, 3], generator: Generator(seed: 3))
        let (_, grads) = valueAndGrad(net) { crossEntropy(logits: net(x), labels: [0, 2]) }
        let trainable = Set(net.namedSlots().filter { $0.1.kind == .parameter && !$0.1.frozen }.map(\.0))
        XCTAssertEqual(Set(grads.keys), trainable)
        XCTAssertFalse(trainable.contains { $0.hasPrefix("blocks.0.") })
        XCTAssertTrue(trainable.isSuperset(of: ["head.weight", "head.bias", "blocks.1.fc1.weight"]))

        let before = Dictionary(uniqueKeysWithValues: net.namedSlots().map { ($0.0, $0.1.value.scalars) })
        SGD(learningRate: 0.1).step(net, gradients: grads)
        for (key, slot) in net.namedSlots() where slot.kind == .parameter {
            let expected = trainable.contains(key) ? zip(before[key]!, grads[key]!.scalars).map { $0 - 0.1 * $1 } : before[key]!
            XCTAssertEqual(slot.value.scalars, expected, key)
        }
        XCTAssertNotEqual(newHead.weight.scalars, before["head.weight"]!, "the live head is the one stepped")
    }

    final class Unkeyed: Module {
        let fc = Linear(2, 2)
        override func callAsFunction(_ x: Tensor) -> Tensor { fc(x) }
    }

    final class Forgetful: Module {
        @Child(key: "fc") var fc: Linear
        @Parameter(key: "scale") var scale: Tensor
        init(setChild: Bool) {
            if setChild { _fc.wrappedValue = Linear(2, 2) } else { _scale.wrappedValue = Tensor.ones([2]) }
        }
    }

    func testAChildOrParameterTheInitializerNeverSetStopsWithItsKey() {
        assertStops(containing: ["Forgetful", "child fc was never set"]) { _ = Forgetful(setChild: false).parameters() }
        assertStops(containing: ["Forgetful", "scale was never set"]) { _ = Forgetful(setChild: true).parameters() }
    }

    func testAStoredModuleWithoutAKeyStopsWithItsName() {
        assertStops(containing: ["Unkeyed", "`fc`", "@Child(key:)"]) { _ = Unkeyed().parameters() }
    }

    func testCheckpointRoundTripIsBitIdentical() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-module-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = Net(), b = Net()
        let x = Tensor.randomNormal([2, 4, 4, 3], generator: Generator(seed: 1))
        _ = a(x)  // one training-mode step moves the running statistics
        let path = dir.appendingPathComponent("net.safetensors").path
        try a.save(to: path)
        try b.load(from: path)
        for (key, value) in a.stateDict() {
            XCTAssertEqual(b.stateDict()[key]!.scalars.map(\.bitPattern), value.scalars.map(\.bitPattern), key)
        }
        a.eval(); b.eval()
        XCTAssertEqual(a(x).scalars.map(\.bitPattern), b(x).scalars.map(\.bitPattern))
        let file = try Safetensors(contentsOf: path)
        XCTAssertEqual(file.entries["bn.num_batches_tracked"]?.dtype, .I64)
    }

    func testStrictLoadingReportsEveryProblemByName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-strict-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var dict = Net().stateDict()
        dict["blocks.0.fc1.renamed"] = dict.removeValue(forKey: "blocks.0.fc1.weight")
        dict["head.bias"] = Tensor.zeros([5])
        let path = dir.appendingPathComponent("bad.safetensors").path
        try Safetensors.write(dict, to: path)
        let net = Net()
        let before = net.stateDict()["head.weight"]!.scalars
        XCTAssertThrowsError(try net.load(from: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(path), text)
            XCTAssertTrue(text.contains("missing keys (1): blocks.0.fc1.weight"), text)
            XCTAssertTrue(text.contains("unused keys (1): blocks.0.fc1.renamed"), text)
            XCTAssertTrue(text.contains("shape mismatch for head.bias: model has [2], checkpoint has [5]"), text)
        }
        XCTAssertEqual(net.stateDict()["head.weight"]!.scalars, before, "a failed load changes nothing")
        // A truncated checkpoint names the file and the tensor whose bytes are missing.
        let good = dir.appendingPathComponent("good.safetensors").path
        try Net().save(to: good)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        try bytes.prefix(bytes.count - 3).write(to: URL(fileURLWithPath: good))
        XCTAssertThrowsError(try Net().load(from: good)) { error in
            XCTAssertTrue("\(error)".contains(good) && "\(error)".contains("outside the data section"), "\(error)")
        }
    }

    func testValueAndGradMatchesFiniteDifferences() {
        let net = Net()
        let x = Tensor.randomNormal([2, 4, 4, 3], generator: Generator(seed: 2))
        net.eval()
        let (_, grads) = valueAndGrad(net) { net(x).square().sum() }
        XCTAssertEqual(Set(grads.keys), Set(net.trainableParameters().map(\.0)))
        // Check one weight element by central differences.
        let w = net.blocks[0].fc1.weight
        var values = w.scalars
        let eps: Float = 1e-2
        values[5] += eps
        net.blocks[0].fc1.weight = Tensor(values, shape: w.shape)
        let plus = withoutGrad { net(x).square().sum().item() }
        values[5] -= 2 * eps
        net.blocks[0].fc1.weight = Tensor(values, shape: w.shape)
        let minus = withoutGrad { net(x).square().sum().item() }
        XCTAssertEqual(grads["blocks.0.fc1.weight"]!.scalars[5], (plus - minus) / (2 * eps), accuracy: 2e-2 * max(1, abs(plus - minus) / (2 * eps)))
    }
}
