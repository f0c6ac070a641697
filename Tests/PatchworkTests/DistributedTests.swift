import Foundation
import XCTest
import Patchwork
import PatchworkNN
@testable import PatchworkTrain

/// The pieces of data-parallel training that run in one process. The runs under mpirun
/// (equivalence with one process, a killed rank, resume) are in scripts/test-distributed.sh,
/// which compares their weights through `testWeightFilesAgree`.
final class DistributedTests: XCTestCase {
    /// Outside mpirun the group is one process, and its collectives hand their input back.
    func testOneProcessGroupCommunicatesWithNoOne() throws {
        guard !ProcessGroup.launchedByMPI else { throw XCTSkip("runs outside mpirun") }
        let group = try ProcessGroup.world()
        XCTAssertEqual(group.rank, 0)
        XCTAssertEqual(group.size, 1)
        var values: [Double] = [1.5, -2]
        try group.allreduceSum(&values)
        XCTAssertEqual(values, [1.5, -2])
        XCTAssertEqual(try group.allgather(42), [42])
        XCTAssertEqual(try group.broadcast(bytes: [1, 2, 3]), [1, 2, 3])
        var gradients = ["a": Tensor([1, 2, 3]), "b": Tensor([4])]
        try GradientAverager(group: group, bucketBytes: 4).average(&gradients)
        XCTAssertEqual(gradients["a"]!.scalars, [1, 2, 3])
        XCTAssertEqual(gradients["b"]!.scalars, [4])
    }

    /// The end-of-epoch check compares these: any changed bit of any parameter or buffer changes it.
    func testWeightsChecksumSeesOneFlippedBit() throws {
        let model = Linear(3, 2)
        let before = Trainer.weightsChecksum(model)
        XCTAssertEqual(Trainer.weightsChecksum(model), before)
        var values = model.weight.scalars
        values[4] = Float(bitPattern: values[4].bitPattern ^ 1)
        model.weight = Tensor(values, shape: model.weight.shape)
        XCTAssertNotEqual(Trainer.weightsChecksum(model), before)
    }

    /// Compares pairs of weight files written by scripts/test-distributed.sh:
    /// PATCHWORK_COMPARE_WEIGHTS="a.safetensors b.safetensors TOLERANCE;…", each tensor's largest
    /// difference relative to its largest magnitude at most TOLERANCE (0: bit for bit).
    func testWeightFilesAgree() throws {
        guard let spec = ProcessInfo.processInfo.environment["PATCHWORK_COMPARE_WEIGHTS"] else {
            throw XCTSkip("scripts/test-distributed.sh sets PATCHWORK_COMPARE_WEIGHTS")
        }
        for pair in spec.split(separator: ";") {
            let fields = pair.split(separator: " ").map(String.init)
            XCTAssertEqual(fields.count, 3, "\"\(pair)\": expected A B TOLERANCE")
            guard fields.count == 3, let tolerance = Double(fields[2]) else { continue }
            let a = try Safetensors(contentsOf: fields[0]), b = try Safetensors(contentsOf: fields[1])
            XCTAssertEqual(a.names.sorted(), b.names.sorted(), "\(fields[0]) and \(fields[1]) hold different tensors")
            var worst = 0.0, worstName = "", worstScale = 0.0
            var differenceSquares = 0.0, squares = 0.0
            for name in a.names.sorted() where b.names.contains(name) {
                let x = try a.tensor(name).scalars, y = try b.tensor(name).scalars
                XCTAssertEqual(x.count, y.count, name)
                let scale = Double(x.map { abs($0) }.max() ?? 0)
                let difference = Double(zip(x, y).map { abs($0 - $1) }.max() ?? 0)
                let relative = difference == 0 ? 0 : difference / max(scale, 1e-30)
                if relative > worst { worst = relative; worstName = name; worstScale = scale }
                for (u, v) in zip(x, y) { differenceSquares += Double(u - v) * Double(u - v); squares += Double(u) * Double(u) }
            }
            let whole = (differenceSquares / max(squares, 1e-300)).squareRoot()
            print("compare \(fields[0]) \(fields[1]): largest relative difference \(worst) (\(worstName.isEmpty ? "none" : "\(worstName), largest magnitude \(worstScale)")), all weights ‖a−b‖/‖a‖ \(whole), tolerance \(tolerance)")
            XCTAssertLessThanOrEqual(worst, tolerance, "\(fields[0]) vs \(fields[1]): \(worstName) differs by \(worst) relative")
        }
    }
}
