import Formats
import Foundation
import ImageDecoding

/// Image files read directly, without a `.cds` file (prediction on unlabelled images):
/// which files a path names, and their pixels.
public enum ImageFiles {
    /// The extensions (lower case) of the formats `decodeRGB` reads.
    public static let extensions = Set(ImageDecoder.extensions)

    /// The image files at `path`: the file itself, or every image file below the folder
    /// (recursively; hidden entries and other extensions skipped), sorted by their path
    /// relative to the folder, which is also their id.
    public static func list(_ path: String) throws -> [(id: String, path: String)] {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ImportError(path: path, kind: .io, reason: "no such file or folder; pass an image, a folder of images or a .cds file")
        }
        guard isDirectory.boolValue else {
            let ext = (path as NSString).pathExtension.lowercased()
            guard extensions.contains(ext) else {
                throw ImportError(path: path, kind: .invalidInput,
                                  reason: "not an image this build reads (\(extensions.sorted().joined(separator: ", "))) nor a .cds file")
            }
            return [((path as NSString).lastPathComponent, path)]
        }
        var found: [(String, String)] = []
        func walk(_ relative: String) throws {
            let folder = relative.isEmpty ? path : path + "/" + relative
            let entries: [String]
            do {
                entries = try manager.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
            } catch {
                throw ImportError(path: folder, kind: .io, reason: "cannot list the folder (\(error.localizedDescription))")
            }
            for entry in entries {
                let child = relative.isEmpty ? entry : relative + "/" + entry
                var childIsDirectory: ObjCBool = false
                _ = manager.fileExists(atPath: path + "/" + child, isDirectory: &childIsDirectory)
                if childIsDirectory.boolValue {
                    try walk(child)
                } else if extensions.contains((entry as NSString).pathExtension.lowercased()) {
                    found.append((child, path + "/" + child))
                }
            }
        }
        try walk("")
        guard !found.isEmpty else {
            throw ImportError(path: path, kind: .invalidInput,
                              reason: "the folder holds no image files (\(extensions.sorted().joined(separator: ", ")))")
        }
        return found
    }

    /// The 8-bit RGB pixels of the image file at `path`, row-major (H, W, 3).
    public static func decodeRGB(_ path: String) throws -> (pixels: [UInt8], height: Int, width: Int) {
        let image = try ImageDecoder.decode(path: path)
        return (image.pixels, image.height, image.width)
    }
}
