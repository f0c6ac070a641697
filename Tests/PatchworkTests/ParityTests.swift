import Foundation
import XCTest
import Patchwork
import PatchworkModels

/// Every reference case in Fixtures/parity must pass; a case whose family is
/// not implemented fails (it is never skipped).
final class ParityTests: XCTestCase {
    func testEveryParityCasePasses() throws {
        guard let folder = Bundle.module.url(forResource: "Fixtures/parity", withExtension: nil) else {
            return XCTFail("missing Fixtures/parity")
        }
        let cases = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertFalse(cases.isEmpty, "no parity cases found")
        for name in cases {
            let path = folder.appendingPathComponent(name).path
            do {
                let result = try Parity.run(casePath: path)
                print(result.line)
                XCTAssertTrue(result.passed, result.line)
            } catch {
                XCTFail("\(name): \(error)")
            }
        }
    }
}
