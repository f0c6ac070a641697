import Foundation
import XCTest
@testable import PatchworkModels

/// Hostile configs: every family's fixture config with one field mutated (zero, negative or huge
/// sizes, heads that do not divide the width, lists of the wrong length, depths of -1 and 1e9) is
/// refused with a thrown error naming the field, in-process and before anything is built (a trap
/// would end the test run; a huge allocation would take seconds and gigabytes).
final class ConfigValidationTests: XCTestCase {
    /// The fixture case `family`-a.json: its whole JSON.
    func fixtureCase(_ family: String) throws -> [String: JSONValue] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/parity/\(family)-a", withExtension: "json"))
        return try JSONDecoder().decode([String: JSONValue].self, from: Data(contentsOf: url))
    }

    /// `value` with the field at `path` (object keys) set to `new`.
    func setting(_ value: JSONValue, _ path: ArraySlice<String>, to new: JSONValue) -> JSONValue {
        guard let key = path.first else { return new }
        var object = value.object ?? [:]
        object[key] = setting(object[key] ?? .null, path.dropFirst(), to: new)
        return .object(object)
    }

    /// The family's fixture config with each mutation applied alone must be refused, naming `field`.
    func assertRefused(_ family: String, _ mutations: [(path: String, value: JSONValue, field: String)],
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let config = try XCTUnwrap(fixtureCase(family)["config"])
        // The unmutated config builds (so each refusal below is the mutation's).
        XCTAssertNoThrow(try Models.family(family).build(config: config), family, file: file, line: line)
        for m in mutations {
            let bad = setting(config, m.path.split(separator: ".").map(String.init)[...], to: m.value)
            let started = Date()
            XCTAssertThrowsError(try Models.family(family).build(config: bad), "\(family) \(m.path) = \(m.value)",
                                 file: file, line: line) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(m.field), "\(family) \(m.path) = \(m.value): \"\(message)\" does not name \(m.field)",
                              file: file, line: line)
            }
            // (vit_hybrid's validatedConfig is its ViT part; its backbone's config is checked as the backbone is built.)
            if !m.path.hasPrefix("embed_layer.") {
                XCTAssertThrowsError(try Models.validatedConfig(family: family, config: bad), "\(family) \(m.path) (validatedConfig)",
                                     file: file, line: line)
            }
            XCTAssertLessThan(Date().timeIntervalSince(started), 5, "\(family) \(m.path): refused promptly", file: file, line: line)
        }
    }

    static let huge: JSONValue = .number(Double(1 << 62))

    func testViT() throws {
        try assertRefused("vit", [
            ("num_heads", 0, "num_heads"), ("num_heads", 5, "num_heads"), ("patch_size", 0, "patch_size"),
            ("patch_size", 5, "patch_size"), ("embed_dim", Self.huge, "embed_dim"), ("embed_dim", -48, "embed_dim"),
            ("depth", -1, "depth"), ("depth", 1e9, "depth"), ("img_size", 0, "img_size"), ("img_size", -32, "img_size"),
            ("in_chans", 0, "in_chans"), ("num_classes", -1, "num_classes"), ("mlp_ratio", -4, "mlp_ratio"),
            ("drop_rate", 2, "drop_rate"), ("drop_path_rate", -0.5, "drop_path_rate"), ("reg_tokens", -1, "reg_tokens"),
            // Each within its own limit, together 600 G parameters.
            ("embed_dim", 49152, "embed_dim"), ("depth", "twelve", "depth"),
            // Patchwork's token-mixer extension: unknown mixers, even kernels, a class-token head with no attention.
            ("token_mixer", "fourier", "token_mixer"), ("token_mixer_kernel", 4, "token_mixer_kernel"),
            ("token_mixer_kernel", -1, "token_mixer_kernel"), ("token_mixer_kernel", Self.huge, "token_mixer_kernel"),
            ("token_mixer", "depthwise_conv", "global_pool"),
        ])
    }

    func testResNet() throws {
        try assertRefused("resnet", [
            ("layers", [2, 1, 1], "layers"), ("layers", [2, -1, 1, 1], "layers[1]"), ("layers", [1e9, 1, 1, 1], "layers[0]"),
            ("channels", [16, 32], "channels"), ("channels", [0, 32, 48, 64], "channels[0]"),
            ("channels", [16, 32, 48, Self.huge], "channels[3]"), ("in_chans", 0, "in_chans"), ("num_classes", -3, "num_classes"),
            ("cardinality", 0, "cardinality"), ("base_width", 32, "base_width"), ("stem_width", 0, "stem_width"),
            ("drop_rate", 1.5, "drop_rate"), ("layers", .null, "layers"),
        ])
    }

    func testHybridViT() throws {
        try assertRefused("vit_hybrid", [
            ("num_heads", 0, "num_heads"), ("num_heads", 5, "num_heads"), ("patch_size", 0, "patch_size"),
            ("depth", -1, "depth"), ("depth", 1e9, "depth"), ("embed_dim", Self.huge, "embed_dim"), ("img_size", 0, "img_size"),
            ("embed_layer.kwargs.backbone.kwargs.layers", [1, -1], "layers[1]"),
            ("embed_layer.kwargs.backbone.kwargs.layers", [1, 1, 1], "layers"),
            ("embed_layer.kwargs.backbone.kwargs.channels", [0, 128], "channels[0]"),
            ("embed_layer.kwargs.backbone.kwargs.stem_chs", 0, "stem_chs"),
        ])
    }

    func testViTC() throws {
        try assertRefused("vitc", [
            ("n_heads", 0, "n_heads"), ("n_heads", 5, "n_heads"), ("hidden_d", Self.huge, "hidden_d"), ("n_layers", -1, "n_layers"),
            ("n_layers", 1e9, "n_layers"), ("image_size", 0, "image_size"), ("mlp_d", 0, "mlp_d"),
            ("c_stem_dims", [12, 24, 0, 48], "c_stem_dims[2]"), ("c_stem_strides", [2, 0, 2, 1], "c_stem_strides[1]"),
            ("num_classes", -1, "num_classes"), ("patch_size", 0, "patch_size"),
        ])
    }

    func testConViT() throws {
        try assertRefused("convit", [
            ("num_heads", 0, "num_heads"), ("patch_size", 0, "patch_size"), ("embed_dim", -1, "embed_dim"),
            ("embed_dim", Self.huge, "embed_dim"), ("depth", -1, "depth"), ("depth", 1e9, "depth"), ("img_size", 0, "img_size"),
            ("mlp_ratio", 0, "mlp_ratio"), ("drop_path_rate", 2, "drop_path_rate"), ("in_chans", 0, "in_chans"),
        ])
    }

    func testLeViT() throws {
        try assertRefused("levit", [
            ("key_dim", 0, "key_dim"), ("embed_dim", [32], "depth"), ("num_heads", [2], "num_heads"), ("num_heads", [0, 3], "num_heads[0]"),
            ("depth", [-1, 1], "depth[0]"), ("depth", [1e9, 1], "depth[0]"), ("img_size", 0, "img_size"),
            ("embed_dim", [Self.huge, 48], "embed_dim[0]"), ("mlp_ratio", -2, "mlp_ratio"), ("embed_dim", .array([]), "embed_dim"),
        ])
    }

    func testSwin() throws {
        try assertRefused("swin", [
            ("depths", [2], "num_heads"), ("depths", [2, -1, 2], "depths[1]"), ("depths", [1e9, 2, 2], "depths[0]"),
            ("num_heads", [0, 4, 8], "num_heads[0]"), ("num_heads", [3, 4, 8], "num_heads[0]"), ("window_size", 0, "window_size"),
            ("patch_size", 0, "patch_size"), ("embed_dim", Self.huge, "embed_dim"), ("img_size", 0, "img_size"),
            ("mlp_ratio", 0, "mlp_ratio"),
        ])
    }

    func testCoAtNetAndMaxViT() throws {
        for family in ["coatnet", "maxvit"] {
            // The two fixtures have different stage counts: the mutations start from each one's lists.
            let cfg = try XCTUnwrap(fixtureCase(family)["config"]?["cfg"]?["kwargs"])
            let dims = try XCTUnwrap(cfg["embed_dim"]?.array), depths = try XCTUnwrap(cfg["depths"]?.array)
            try assertRefused(family, [
                ("cfg.kwargs.embed_dim", .array(Array(dims.dropLast())), "depths"),
                ("cfg.kwargs.depths", .array([-1] + depths.dropFirst()), "depths[0]"),
                ("cfg.kwargs.depths", .array([1e9] + depths.dropFirst()), "depths[0]"),
                ("cfg.kwargs.embed_dim", .array([Self.huge] + dims.dropFirst()), "embed_dim[0]"),
                ("cfg.kwargs.transformer_cfg.kwargs.dim_head", 0, "dim_head"), ("cfg.kwargs.stem_width", 0, "stem_width"),
                ("img_size", 0, "img_size"), ("num_classes", -1, "num_classes"), ("drop_path_rate", 3, "drop_path_rate"),
            ])
        }
    }

    func testPVT() throws {
        try assertRefused("pvt", [
            ("num_attention_heads", [0, 2, 3, 4], "num_attention_heads[0]"), ("hidden_sizes", [16, 32, 48, Self.huge], "hidden_sizes[3]"),
            ("depths", [1, -1, 1, 1], "depths[1]"), ("depths", [1e9, 1, 1, 1], "depths[0]"), ("image_size", 0, "image_size"),
            ("patch_sizes", [0, 2, 2, 2], "patch_sizes[0]"), ("num_encoder_blocks", 0, "num_encoder_blocks"),
            ("hidden_sizes", [16, 32], "hidden_sizes"), ("num_labels", -1, "num_labels"),
        ])
    }

    func testPVTv2() throws {
        try assertRefused("pvt_v2", [
            ("depths", .array([]), "depths"), ("num_heads", [1, 2], "num_heads"), ("embed_dims", [0, 32, 48], "embed_dims[0]"),
            ("sr_ratios", [0, 2, 1], "sr_ratios[0]"), ("depths", [1e9, 2, 1], "depths[0]"), ("depths", [1, -2, 1], "depths[1]"),
            ("num_heads", [1, 5, 3], "num_heads[1]"), ("embed_dims", [16, 32, Self.huge], "embed_dims[2]"),
        ])
    }

    func testP2T() throws {
        try assertRefused("p2t", [
            ("embed_dims", [16, 32, 48], "embed_dims"), ("num_heads", [0, 2, 3, 4], "num_heads[0]"), ("img_size", 0, "img_size"),
            ("img_size", 100, "img_size"), ("depths", [-1, 1, 2, 1], "depths[0]"), ("depths", [1, 1, 1e9, 1], "depths[2]"),
            ("embed_dims", [16, 32, 48, Self.huge], "embed_dims[3]"), ("mlp_ratios", [8, 8, 4], "mlp_ratios"),
        ])
    }

    func testCeiT() throws {
        try assertRefused("ceit", [
            ("num_heads", 0, "num_heads"), ("num_heads", 5, "num_heads"), ("depth", -1, "depth"), ("depth", 1e9, "depth"),
            ("patch_size", 0, "patch_size"), ("embed_dim", Self.huge, "embed_dim"), ("leff_local_size", 0, "leff_local_size"),
            ("img_size", 0, "img_size"),
        ])
    }

    func testDAT() throws {
        try assertRefused("dat", [
            ("dims", [8, 16, 32], "dims"), ("heads", [0, 2, 4, 8], "heads[0]"), ("depths", [-1, 2, 2, 2], "depths[0]"),
            ("depths", [2, 2, 2, 1e9], "depths[3]"), ("img_size", 0, "img_size"), ("patch_size", 0, "patch_size"),
            ("window_sizes", [0, 4, 2, 2], "window_sizes[0]"), ("dims", [8, 16, 32, Self.huge], "dims[3]"),
        ])
    }

    func testCvT() throws {
        try assertRefused("cvt", [
            ("depth", .array([]), "depth"), ("num_heads", [0, 2, 3], "num_heads[0]"), ("embed_dim", [16, 32, Self.huge], "embed_dim[2]"),
            ("patch_stride", [0, 2, 2], "patch_stride[0]"), ("depth", [1, 2, 1e9], "depth[2]"), ("depth", [1, -2, 3], "depth[1]"),
            ("num_channels", 0, "num_channels"), ("drop_rate", [0, 2, 0], "drop_rate[1]"),
        ])
    }

    func testCMT() throws {
        try assertRefused("cmt", [
            ("embed_dims", [16, 32, 48], "embed_dims"), ("num_heads", [0, 2, 4, 8], "num_heads[0]"), ("img_size", 0, "img_size"),
            ("img_size", 48, "img_size"), ("depths", [-1, 1, 2, 1], "depths[0]"), ("depths", [1, 1, 1e9, 1], "depths[2]"),
            ("qk_ratio", 0, "qk_ratio"), ("embed_dims", [16, 32, 48, Self.huge], "embed_dims[3]"),
        ])
    }

    /// num_classes 0 is timm's feature-extraction mode: the model builds, without a head.
    func testNoClassesBuildsAHeadlessModel() throws {
        var config = try XCTUnwrap(fixtureCase("vit")["config"]?.object)
        config["num_classes"] = 0
        let model = try Models.family("vit").build(config: .object(config))
        XCTAssertEqual(try Models.validatedConfig(family: "vit", config: .object(config)).classCount, 0)
        XCTAssertFalse(model.namedSlots().contains { $0.0.hasPrefix("head.") })
    }

    /// A parity case whose input_shape is not the model's input, or that has no classes, is
    /// refused naming the field before its weights are read.
    func testParityRefusesAnInputShapeOrClassCountThatDoesNotFit() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("patchwork-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let cases: [(family: String, key: String, value: JSONValue, field: String)] = [
            ("vit", "input_shape", [0, 3, 32, 32], "input_shape"), ("vit", "input_shape", [2, 3, 64, 64], "input_shape"),
            ("vit", "input_shape", [2, 1, 32, 32], "input_shape"), ("vit", "input_shape", [2, 3, 32], "input_shape"),
            ("swin", "input_shape", [2, 3, 16, 16], "input_shape"), ("resnet", "input_shape", [2, 4, 64, 64], "input_shape"),
            ("pvt", "input_shape", [2, 3, 32, 32], "input_shape"), ("vit", "num_classes", 0, "num_classes"),
            ("vit", "config.num_classes", 0, "num_classes"),
            ("vit", "config.num_heads", 0, "num_heads"),
        ]
        for c in cases {
            var json = JSONValue.object(try fixtureCase(c.family))
            if c.key == "num_classes" { json = setting(json, ["config", "num_classes"], to: c.value) }
            json = setting(json, c.key.split(separator: ".").map(String.init)[...], to: c.value)
            let path = folder.appendingPathComponent("\(c.family)-a.json")
            try JSONEncoder().encode(json).write(to: path)
            XCTAssertThrowsError(try Parity.run(casePath: path.path), "\(c.family) \(c.key) = \(c.value)") { error in
                XCTAssertTrue("\(error)".contains(c.field), "\(c.family) \(c.key) = \(c.value): \"\(error)\" does not name \(c.field)")
            }
        }
    }

    /// `Models.anyInputSizeFamilies` (what the CLI's --img-size check uses) are the families whose config fixes no side.
    func testTheFamiliesThatTakeAnyInputSizeAreThoseWhoseConfigFixesNone() throws {
        for family in Models.families {
            let config = try XCTUnwrap(fixtureCase(family.name)["config"])
            let input = try Models.validatedConfig(family: family.name, config: config).expectedInput
            XCTAssertEqual(input.height == nil, Models.anyInputSizeFamilies.contains(family.name), family.name)
        }
    }

    /// Every registered variant passes its own validation (the limits refuse none of them).
    func testEveryRegisteredVariantIsValid() throws {
        for variant in Models.list() where variant.family != "vit_hybrid" {
            guard let config = variant.referenceConfig(numClasses: 1000) else { continue }
            XCTAssertNoThrow(try Models.validatedConfig(family: variant.family, config: config), variant.name)
        }
        XCTAssertNoThrow(try ViTConfig(imgSize: 224, patchSize: 16, embedDim: 1024, depth: 24, numHeads: 16).validate())
    }
}
