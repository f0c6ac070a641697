import Foundation
import XCTest
import Patchwork
import PatchworkData

final class ImageIOTests: XCTestCase {
    func testPNGRoundTripIsExactAt8Bits() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-image-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let values: [Float] = (0..<105).map { (i: Int) -> Float in Float((i * 37) % 256) / 255 }
        let image = Tensor(values, shape: [5, 7, 3])
        let path = dir.appendingPathComponent("a.png").path
        try ImageIO.savePNG(image, to: path)
        let back = try ImageIO.load(path)
        XCTAssertEqual(back.shape, [5, 7, 3])
        XCTAssertEqual(back.scalars, values)
        let grey = try ImageIO.load(path, channels: 1)
        XCTAssertEqual(grey.shape, [5, 7, 1])
    }

    func testBadFilesGiveErrorsNamingThePath() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-an-image-\(getpid()).png").path
        try Data("hello".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try ImageIO.load(path)) { error in
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("cannot decode"), "\(error)")
        }
        XCTAssertThrowsError(try ImageIO.load("/nonexistent/x.png")) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
        XCTAssertThrowsError(try ImageIO.savePNG(Tensor.zeros([4, 4]), to: path)) { error in
            XCTAssertTrue("\(error)".contains("[4, 4]"), "\(error)")
        }
    }
}
