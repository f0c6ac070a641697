import XCTest
@testable import PatchworkData
@testable import PatchworkModels

final class PretrainedConfigTests: XCTestCase {
    func testEveryConfigNamesARegisteredVariantAndEachVariantHasOneDefault() throws {
        let variants = Set(Models.list().map(\.name))
        XCTAssertGreaterThan(Pretrained.all.count, 100)
        for config in Pretrained.all {
            XCTAssertTrue(variants.contains(config.architecture), config.name)
            XCTAssertEqual(config.inputSize.count, 2, config.name)
            XCTAssertEqual(config.mean.count, 3, config.name)
            XCTAssertEqual(config.std.count, 3, config.name)
            XCTAssertTrue(config.std.allSatisfy { $0 > 0 }, config.name)
            XCTAssertTrue(config.cropPct > 0 && config.cropPct <= 1, config.name)
            XCTAssertTrue(["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"].contains(config.interpolation), config.name)
            XCTAssertTrue(["center", "squash", "border"].contains(config.cropMode), config.name)
            XCTAssertTrue(["rgb", "bgr"].contains(config.channelOrder), config.name)
        }
        for name in variants {
            let configs = Pretrained.configs(for: name)
            if name.hasSuffix("_nano") {
                XCTAssertTrue(configs.isEmpty, "\(name) is Patchwork's own and has no published weights")
            } else {
                XCTAssertEqual(configs.filter(\.isDefault).count, 1, "\(name) needs exactly one default tag")
                XCTAssertTrue(configs.first?.isDefault ?? false, name)
                XCTAssertEqual(Set(configs.map(\.tag)).count, configs.count, "\(name) repeats a tag")
            }
        }
    }

    /// The two checkpoints the issue names, with the values timm's default_cfgs give them.
    func testValuesOfTwoPublishedCheckpoints() throws {
        let resnet = try XCTUnwrap(Models.resolve("resnet18").pretrained)
        XCTAssertEqual(resnet.name, "resnet18.a1_in1k")
        XCTAssertEqual(resnet.interpolation, "bicubic")
        XCTAssertEqual(resnet.cropPct, 0.95)
        XCTAssertEqual(resnet.mean, [0.485, 0.456, 0.406])
        XCTAssertEqual(resnet.std, [0.229, 0.224, 0.225])
        XCTAssertEqual(resnet.labelSet, "imagenet-1k")
        let vit = try XCTUnwrap(Models.resolve("vit_tiny_patch16_224.augreg_in21k_ft_in1k").pretrained)
        XCTAssertEqual(vit.mean, [0.5, 0.5, 0.5])
        XCTAssertEqual(vit.std, [0.5, 0.5, 0.5])
        XCTAssertEqual(vit.cropPct, 0.9)
        XCTAssertEqual(vit.interpolation, "bicubic")
        XCTAssertEqual(vit.numClasses, 1000)
        let in21k = try XCTUnwrap(Models.resolve("vit_tiny_patch16_224.augreg_in21k").pretrained)
        XCTAssertEqual(in21k.numClasses, 21843)
        XCTAssertEqual(in21k.labelSet, "imagenet-21k-goog")
    }

    func testReferenceNamesTagsAndHubRepositoriesResolve() throws {
        XCTAssertEqual(try Models.variant("vit_tiny_patch16_224.augreg_in21k_ft_in1k").name, "vit_tiny_patch16_224")
        XCTAssertEqual(try Models.variant("timm/swin_tiny_patch4_window7_224.ms_in1k").name, "swin_tiny_patch4_window7_224")
        let cvt = try Models.resolve("hf-hub:microsoft/cvt-13")
        XCTAssertEqual(cvt.variant.name, "cvt_13")
        XCTAssertEqual(cvt.pretrained?.hfHubID, "microsoft/cvt-13")
        XCTAssertNil(try Models.resolve("vit_nano").pretrained)
        XCTAssertEqual(try Models.resolve("vitc_1gf").pretrained?.channelOrder, "bgr")
        XCTAssertThrowsError(try Models.variant("vit_tiny_patch16_224.no_such_tag")) { error in
            XCTAssertTrue("\(error)".contains("augreg_in21k_ft_in1k"), "\(error)")
        }
        XCTAssertThrowsError(try Models.variant("timm/not_a_model.x")) { error in
            XCTAssertTrue("\(error)".contains("timm/not_a_model.x"), "\(error)")
        }
        XCTAssertThrowsError(try Models.variant("vitt_tiny.augreg")) { error in
            XCTAssertTrue("\(error)".contains("unknown model"), "\(error)")
        }
    }

    func testImageNetClassesAreTheThousandSortedWordNetIDs() {
        let ids = ImageNet.wordNetIDs
        XCTAssertEqual(ids.count, 1000)
        XCTAssertEqual(ids, ids.sorted())
        XCTAssertEqual(Set(ids).count, 1000)
        XCTAssertTrue(ids.allSatisfy { $0.count == 9 && $0.hasPrefix("n") })
        XCTAssertEqual(ImageNet.classes[0].wordNetID, "n01440764")
        XCTAssertTrue(ImageNet.classNames[0].hasPrefix("tench"))
        XCTAssertTrue(ImageNet.classNames[207].hasPrefix("golden retriever"))
        XCTAssertTrue(ImageNet.classNames[999].hasPrefix("toilet tissue"))
        XCTAssertNil(ImageNet.classNames(labelSet: "imagenet-21k-goog"))
    }
}
