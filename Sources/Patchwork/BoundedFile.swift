import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file that could not be read: not there, not a regular file, or larger than its reader allows.
public struct FileReadError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(path: String, _ reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path): \(reason)" }
}

/// The one way every reader opens an input file (images, datasets, safetensors,
/// JSON): only regular files are read, and no more bytes than the reader's limit.
///
/// The file is opened without blocking and checked with `fstat` on the open
/// descriptor, so a FIFO, a device or a folder named like an image gets an
/// error instead of a hang or an endless read, and the file checked is the
/// file read (no race between a check by name and the open).
public enum BoundedFile {
    /// The limit for JSON files read from disk (model configs, parity cases,
    /// run summaries, benchmark suites): the largest in the repository is a few MB.
    public static let jsonLimit = 64 << 20

    /// The whole of `path`, refused when it is not a regular file or has more
    /// than `limit` bytes. `what` names the kind of file in the error ("image file").
    public static func read(_ path: String, limit: Int, what: String) throws -> [UInt8] {
        let (fd, size) = try openRegularFile(path, what: what)
        defer { close(fd) }
        guard size <= limit else {
            throw FileReadError(path: path, "\(what) of \(size) bytes is over the limit of \(limit) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileReadError(path: path, "cannot read the \(what) (\(String(cString: strerror(errno))))")
            }
            if n == 0 { break }  // the file shrank while being read: keep what is there
            done += n
        }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    /// `path` memory-mapped read-only (for large files read in pieces, such as
    /// checkpoints); refused when it is not a regular file.
    public static func map(_ path: String, what: String) throws -> Data {
        let (fd, size) = try openRegularFile(path, what: what)
        defer { close(fd) }
        if size == 0 { return Data() }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw FileReadError(path: path, "cannot map the \(what) into memory (\(String(cString: strerror(errno))))")
        }
        return Data(bytesNoCopy: address, count: size, deallocator: .custom { pointer, count in _ = munmap(pointer, count) })
    }

    /// An open descriptor of `path` and its size, when it is a regular file.
    private static func openRegularFile(_ path: String, what: String) throws -> (fd: Int32, size: Int) {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "no such file" : "cannot open the \(what) (\(String(cString: strerror(errno))))"
            throw FileReadError(path: path, reason)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FileReadError(path: path, "cannot read the \(what)'s status (\(reason))")
        }
        let kind: String?
        switch info.st_mode & S_IFMT {
        case S_IFREG: kind = nil
        case S_IFDIR: kind = "a folder"
        case S_IFIFO: kind = "a FIFO (named pipe)"
        case S_IFCHR, S_IFBLK: kind = "a device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "something other than a file"
        }
        if let kind {
            close(fd)
            throw FileReadError(path: path, "is \(kind), expected a regular \(what)")
        }
        return (fd, Int(info.st_size))
    }
}
