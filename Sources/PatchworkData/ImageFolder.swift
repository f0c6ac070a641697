import Foundation
import Patchwork

/// Images in one subfolder per class, as torchvision's ImageFolder:
///
///     root/cat/0001.png
///     root/cat/more/0002.jpg
///     root/dog/0003.bmp
///
/// Classes are the subfolders' names, sorted; a class's images are the
/// PNG, JPEG and BMP files (by extension, any case) anywhere below its
/// folder, sorted by path. Images are decoded when read, forced to 3
/// channels and resized (bilinear, antialiased when shrinking) to
/// `imageSize` × `imageSize`, or, without one, to the size of the first image.
/// An image of more than `maxImagePixels` pixels is refused before it is decoded.
/// With `preprocessing`, images are decoded to 8 bits and go through that
/// evaluation transform (resize and centre crop as PIL and timm do them) to its
/// input size instead, as pixels in [0, 1] (normalisation is the model's step).
public struct ImageFolder: Dataset {
    public static let extensions: Set<String> = ["png", "jpg", "jpeg", "bmp"]

    public let root: String
    public let classNames: [String]
    public let imageShape: [Int]
    /// Every image file with its label, in reading order.
    public let files: [(path: String, label: Int)]
    public var count: Int { files.count }
    /// The pixel limit of each image (`ImageIO.load`'s `maxPixels`).
    public let maxImagePixels: Int
    /// A published checkpoint's evaluation transform, applied instead of the plain resize.
    public let preprocessing: ImagePreprocessing?

    /// Lists `root`. With `classNames`, those are the classes (in that
    /// order: pass a training set's names to give its test set the same
    /// labels); a class may then have no folder, but a folder that is not a
    /// class is an error. Without, every subfolder is a class and must hold
    /// at least one image.
    public init(root: String, imageSize: Int? = nil, classNames: [String]? = nil,
                maxImagePixels: Int = ImageIO.defaultMaxPixels) throws {
        if let s = imageSize, s <= 0 { throw DataError("image size must be positive, got \(s)") }
        try self.init(root: root, height: imageSize, width: imageSize, classNames: classNames, maxImagePixels: maxImagePixels)
    }

    /// As `init(root:imageSize:classNames:)`, resizing to `height` × `width`
    /// (both or neither).
    public init(root: String, height: Int?, width: Int?, classNames: [String]? = nil,
                maxImagePixels: Int = ImageIO.defaultMaxPixels, preprocessing: ImagePreprocessing? = nil) throws {
        guard FileManager.default.fileExists(atPath: root) else { throw DataError("\(root): no such folder") }
        guard isFolder(root) else { throw DataError("\(root): is a file, expected a folder with one subfolder per class") }
        if (height == nil) != (width == nil) { throw DataError("ImageFolder \(root): give both height and width, or neither") }
        if let h = height, let w = width, h <= 0 || w <= 0 { throw DataError("image size must be positive, got \(h)×\(w)") }
        let entries = try FileManager.default.contentsOfDirectory(atPath: root)
        let folders = entries.filter { !$0.hasPrefix(".") && isFolder(joinPath(root, $0)) }.sorted()
        if folders.isEmpty {
            throw DataError("\(root): no class subfolders (expected root/<class>/<image>.png|jpg|bmp, one subfolder per class)")
        }
        let classes: [String]
        if let given = classNames {
            if let stray = folders.first(where: { !given.contains($0) }) {
                throw DataError("\(joinPath(root, stray)): folder \"\(stray)\" is not one of the \(given.count) classes (\(given.prefix(10).joined(separator: ", "))\(given.count > 10 ? ", …" : ""))")
            }
            classes = given
        } else {
            classes = folders
        }
        var files: [(path: String, label: Int)] = []
        for (label, name) in classes.enumerated() {
            let folder = joinPath(root, name)
            guard isFolder(folder) else { continue }
            let images = ImageFolder.imagePaths(below: folder)
            if images.isEmpty && classNames == nil {
                throw DataError("\(folder): no images (PNG, JPEG or BMP files) in class folder \"\(name)\"")
            }
            files += images.map { ($0, label) }
        }
        if files.isEmpty { throw DataError("\(root): no images (PNG, JPEG or BMP files) in any class folder") }

        let side: (Int, Int)
        if let preprocessing {
            side = (preprocessing.inputHeight, preprocessing.inputWidth)
        } else if let h = height, let w = width {
            side = (h, w)
        } else {
            do {
                let (w, h) = try ImageIO.size(files[0].path, maxPixels: maxImagePixels)
                side = (h, w)
            } catch let error as ImageIO.Error {
                throw DataError("\(error.path): cannot read the image's size (\(error.reason))")
            }
        }
        self.root = root
        self.classNames = classes
        self.files = files
        self.imageShape = [side.0, side.1, 3]
        self.maxImagePixels = maxImagePixels
        self.preprocessing = preprocessing
    }

    public func sample(_ index: Int) throws -> (image: Tensor, label: Int) {
        guard index >= 0 && index < count else { throw DataError("ImageFolder \(root): sample \(index) is outside 0..<\(count)") }
        let (path, label) = files[index]
        do {
            if let preprocessing {
                return (try preprocessing.pixels(try ImageIO.decode(path, maxPixels: maxImagePixels)), label)
            }
            let image = try ImageIO.load(path, channels: 3, maxPixels: maxImagePixels)
            return (resizedImage(image, to: (imageShape[0], imageShape[1])), label)
        } catch let error as ImageIO.Error {
            throw DataError("\(error.path): \(error.reason)")
        } catch let error as ImagePreprocessing.Error {
            throw DataError("\(path): \(error)")
        }
    }

    static func imagePaths(below folder: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return [] }
        var paths: [String] = []
        while let relative = walker.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            if name.hasPrefix(".") { continue }
            let ext = (name as NSString).pathExtension.lowercased()
            let path = joinPath(folder, relative)
            if ImageFolder.extensions.contains(ext) && !isFolder(path) { paths.append(path) }
        }
        return paths.sorted()
    }
}

/// An [H, W, C] image resized to `size` (bilinear; antialiased along an axis that shrinks).
public func resizedImage(_ image: Tensor, to size: (Int, Int)) -> Tensor {
    let (h, w, c) = (image.shape[0], image.shape[1], image.shape[2])
    if (h, w) == size { return image }
    let shrinking = size.0 < h || size.1 < w
    let out = withoutGrad {
        resize(image.reshaped([1, h, w, c]), size: size, mode: .bilinear, antialias: shrinking)
    }
    return out.reshaped([size.0, size.1, c])
}
