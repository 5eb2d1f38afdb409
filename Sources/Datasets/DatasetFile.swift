// The `.cds` (clipit dataset) file: uint8 HWC images with their labels, memory-mapped.
//
// Layout (all integers little-endian; docs/datasets.md has the full table):
//   0   8  magic "CLIPITDS"
//   8   4  version (1)
//   12  4  fixed header size (64)
//   16  4  height            20  4  width            24  4  channels
//   28  4  class count       32  8  image count      40  8  JSON length (unpadded)
//   48  8  images offset     56  8  labels offset
//   64     JSON block, padded with spaces to a multiple of 8
//   images offset: count × height × width × channels uint8 (image-major, HWC)
//   zero padding to a multiple of 8
//   labels offset: count × Int32 (all -1 in an unlabelled file: JSON "labelled": false)
//   last 4 bytes: CRC32 of every byte before them
import Formats
import Foundation

/// The fixed facts of the `.cds` format.
public enum DatasetFormat {
    /// The 8 bytes every `.cds` file starts with.
    public static let magic: [UInt8] = Array("CLIPITDS".utf8)
    /// The version this code writes and reads.
    public static let version: UInt32 = 1
    /// Size of the fixed binary header in bytes.
    public static let fixedHeaderSize = 64
    /// Largest JSON block accepted (a guard against reading garbage as a length).
    public static let maxJSONBytes = 1 << 30
    /// The label stored for every image of an unlabelled file (`"labelled": false`), and
    /// what `DatasetFile.label(at:)` returns there. A labelled file never holds it.
    public static let noLabel: Int32 = -1

    static func align8(_ n: Int) -> Int { (n + 7) & ~7 }
}

/// Descriptive fields stored in the JSON block of a `.cds` file.
public struct DatasetInfo: Equatable, Sendable {
    /// Class names; labels index into this list. An unlabelled file keeps the class names of
    /// the task its images serve (the classifier's classes), though no image has a label.
    public var classNames: [String]
    /// Split name ("train", "val", "test", "paired", …).
    public var split: String
    /// Where the data came from (free text, e.g. "synthetic histology v1, seed 0").
    public var source: String
    /// Optional per-item identifiers (one per image when present).
    public var ids: [String]?
    /// Optional named per-item integer attributes (each one value per image), e.g. a
    /// latent subtype of synthetic data, kept for analysis.
    public var attributes: [String: [Int]]
    /// Free-form string metadata.
    public var metadata: [String: String]
    /// False for a pool of unlabelled images (decision 9 of the method spec): every stored
    /// label is `DatasetFormat.noLabel` (-1) and the JSON block says `"labelled": false`.
    /// Such a file can be paired and predicted on, never trained or evaluated on.
    public var labelled: Bool

    public init(classNames: [String], split: String, source: String, labelled: Bool = true, ids: [String]? = nil,
                attributes: [String: [Int]] = [:], metadata: [String: String] = [:]) {
        self.classNames = classNames
        self.split = split
        self.source = source
        self.labelled = labelled
        self.ids = ids
        self.attributes = attributes
        self.metadata = metadata
    }

    /// The JSON block text (keys in a fixed order, so files are byte-reproducible).
    func json() -> String {
        var parts: [String] = []
        parts.append("\"class_names\":[" + classNames.map(jsonString).joined(separator: ",") + "]")
        parts.append("\"split\":" + jsonString(split))
        parts.append("\"source\":" + jsonString(source))
        // Written only when false, so labelled files keep the bytes they always had.
        if !labelled { parts.append("\"labelled\":false") }
        if let ids { parts.append("\"ids\":[" + ids.map(jsonString).joined(separator: ",") + "]") }
        if !attributes.isEmpty {
            let items = attributes.keys.sorted().map { key in
                jsonString(key) + ":[" + attributes[key]!.map(String.init).joined(separator: ",") + "]"
            }
            parts.append("\"attributes\":{" + items.joined(separator: ",") + "}")
        }
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { jsonString($0) + ":" + jsonString(metadata[$0]!) }
            parts.append("\"metadata\":{" + items.joined(separator: ",") + "}")
        }
        return "{" + parts.joined(separator: ",") + "}"
    }
}

// MARK: - Reader

/// A `.cds` dataset file, memory-mapped read-only and validated on open.
///
/// With `verify: true` (the default) the CRC32 of the whole file is recomputed, which
/// touches every page. With `verify: false` only the header, JSON block, sizes and labels
/// are checked, so a rank that then reads only its own slice of images pages in only
/// that slice. Image bytes stay valid for the lifetime of the object.
public final class DatasetFile: @unchecked Sendable {  // immutable after init
    public let path: String
    public let height: Int
    public let width: Int
    public let channels: Int
    public let count: Int
    public let info: DatasetInfo
    /// Labels, one per image, each in 0..<classNames.count; in an unlabelled file every one
    /// is `DatasetFormat.noLabel` (-1).
    public let labels: [Int32]
    /// The stored CRC32 (verified on open when `verify` was true).
    public let checksum: UInt32
    private let file: MappedFile
    private let imagesOffset: Int

    public var classNames: [String] { info.classNames }
    public var split: String { info.split }
    public var ids: [String]? { info.ids }
    /// False when the file holds unlabelled images (JSON `"labelled": false`, every label -1).
    public var isLabelled: Bool { info.labelled }
    /// Bytes of one image (height × width × channels).
    public var imageByteCount: Int { height * width * channels }

    /// Opens, maps and validates `path`; throws `DatasetError` naming the file and the problem.
    public init(path: String, verify: Bool = true) throws {
        self.path = path
        func fail(_ kind: DatasetError.Kind, _ reason: String) -> DatasetError {
            DatasetError(path: path, kind: kind, reason: reason)
        }
        let file = try mapDatasetFile(path)
        let size = file.size
        let bytes = file.bytes

        guard size >= DatasetFormat.magic.count,
              Array(bytes[0..<DatasetFormat.magic.count]) == DatasetFormat.magic else {
            throw fail(.badMagic, "bad magic: the file does not start with \"CLIPITDS\"; it is not a clipit dataset (.cds) file")
        }
        guard size >= DatasetFormat.fixedHeaderSize + 4 else {
            throw fail(.truncated, "truncated: \(size) bytes, fewer than the \(DatasetFormat.fixedHeaderSize)-byte header and checksum; regenerate the file")
        }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        let version = u32(8)
        guard version == Int(DatasetFormat.version) else {
            throw fail(.unsupportedVersion, "version \(version) is not supported (this build reads version \(DatasetFormat.version)); regenerate the file with this build")
        }
        guard u32(12) == DatasetFormat.fixedHeaderSize else {
            throw fail(.badHeader, "the fixed header size field is \(u32(12)), expected \(DatasetFormat.fixedHeaderSize); the file is corrupt")
        }
        let (height, width, channels, classCount) = (u32(16), u32(20), u32(24), u32(28))
        let (rawCount, rawJSONLength, rawImages, rawLabels) = (u64(32), u64(40), u64(48), u64(56))
        guard height > 0, width > 0, [1, 3, 4].contains(channels) else {
            throw fail(.badHeader, "wrong sizes: height \(height), width \(width), channels \(channels) (need positive sizes and 1, 3 or 4 channels); the file is corrupt")
        }
        guard classCount > 0 else {
            throw fail(.badHeader, "the class count is 0; the file is corrupt")
        }
        guard rawJSONLength <= UInt64(DatasetFormat.maxJSONBytes),
              rawCount <= UInt64(Int.max / 8) / UInt64(height * width * channels + 4) else {
            throw fail(.badHeader, "wrong sizes: image count \(rawCount) or JSON length \(rawJSONLength) is implausibly large; the file is corrupt")
        }
        let count = Int(rawCount)
        let jsonLength = Int(rawJSONLength)
        let imageBytes = count * height * width * channels
        let expectedImages = DatasetFormat.fixedHeaderSize + DatasetFormat.align8(jsonLength)
        let expectedLabels = DatasetFormat.align8(expectedImages + imageBytes)
        let expectedSize = expectedLabels + 4 * count + 4
        guard rawImages == UInt64(expectedImages), rawLabels == UInt64(expectedLabels) else {
            throw fail(.sizeMismatch, "wrong sizes: images offset \(rawImages) and labels offset \(rawLabels) do not follow from the header (expected \(expectedImages) and \(expectedLabels)); the file is corrupt")
        }
        guard size >= expectedSize else {
            throw fail(.truncated, "truncated: \(size) bytes, but \(count) images of \(height)×\(width)×\(channels) with labels and checksum need \(expectedSize); the write was interrupted or the copy is incomplete — regenerate or copy it again")
        }
        guard size == expectedSize else {
            throw fail(.sizeMismatch, "wrong sizes: \(size) bytes, but the header describes \(expectedSize); the file has trailing data or a corrupt header")
        }

        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: size - 4, as: UInt32.self))
        if verify {
            let computed = crc32Update(0, bytes.baseAddress, count: size - 4)
            guard computed == stored else {
                throw fail(.checksumMismatch, "checksum mismatch (stored \(hex32(stored)), computed \(hex32(computed))): the file is corrupt or was modified; regenerate it")
            }
        }

        // JSON block.
        let jsonBytes = UnsafeRawBufferPointer(rebasing: bytes[DatasetFormat.fixedHeaderSize ..< DatasetFormat.fixedHeaderSize + jsonLength])
        let object: [String: Any]
        do {
            guard let parsed = try JSONSerialization.jsonObject(with: Data(jsonBytes)) as? [String: Any] else {
                throw fail(.badHeader, "the JSON block is not an object; the file is corrupt")
            }
            object = parsed
        } catch let error as DatasetError {
            throw error
        } catch {
            throw fail(.badHeader, "the JSON block is not valid JSON (\(error.localizedDescription)); the file is corrupt")
        }
        guard let classNames = object["class_names"] as? [String] else {
            throw fail(.badHeader, "the JSON block has no \"class_names\" list of strings; the file is corrupt")
        }
        guard classNames.count == classCount else {
            throw fail(.badHeader, "wrong sizes: the header says \(classCount) classes but the JSON block names \(classNames.count)")
        }
        let split = object["split"] as? String ?? ""
        let source = object["source"] as? String ?? ""
        var labelled = true
        if let value = object["labelled"] {
            guard let flag = value as? Bool else {
                throw fail(.badHeader, "\"labelled\" is not true or false; the file is corrupt")
            }
            labelled = flag
        }
        var ids: [String]? = nil
        if let value = object["ids"] {
            guard let list = value as? [String], list.count == count else {
                throw fail(.badHeader, "wrong sizes: \"ids\" must be a list of \(count) strings; the file is corrupt")
            }
            ids = list
        }
        var attributes: [String: [Int]] = [:]
        if let value = object["attributes"] {
            guard let dict = value as? [String: Any] else {
                throw fail(.badHeader, "\"attributes\" is not an object; the file is corrupt")
            }
            for (key, item) in dict {
                guard let list = item as? [NSNumber], list.count == count else {
                    throw fail(.badHeader, "wrong sizes: attribute \"\(key)\" must be a list of \(count) integers; the file is corrupt")
                }
                attributes[key] = list.map { $0.intValue }
            }
        }
        var metadata: [String: String] = [:]
        if let value = object["metadata"] {
            guard let dict = value as? [String: String] else {
                throw fail(.badHeader, "\"metadata\" is not an object of strings; the file is corrupt")
            }
            metadata = dict
        }

        // Labels (always range-checked: 4 bytes per image, cheap). -1 (no label) is valid
        // only in an unlabelled file, and there it is the only valid value.
        var labels = [Int32](repeating: 0, count: count)
        labels.withUnsafeMutableBytes { destination in
            destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[expectedLabels ..< expectedLabels + 4 * count]))
        }
        for i in 0..<count {
            let label = Int32(littleEndian: labels[i])
            labels[i] = label
            if labelled {
                guard label >= 0, Int(label) < classCount else {
                    let hint = label == DatasetFormat.noLabel
                        ? " (-1 marks an image without a label, which only a file whose JSON block says \"labelled\": false may hold)" : ""
                    throw fail(.labelOutOfRange, "label out of range: image \(i) has label \(label), but there are \(classCount) classes\(hint); the file is corrupt")
                }
            } else {
                guard label == DatasetFormat.noLabel else {
                    throw fail(.labelOutOfRange, "label out of range: image \(i) has label \(label), but the file holds unlabelled images (\"labelled\": false), whose labels are all -1; the file is corrupt")
                }
            }
        }

        self.file = file
        self.height = height
        self.width = width
        self.channels = channels
        self.count = count
        self.imagesOffset = expectedImages
        self.labels = labels
        self.checksum = stored
        self.info = DatasetInfo(classNames: classNames, split: split, source: source, labelled: labelled, ids: ids,
                                attributes: attributes, metadata: metadata)
    }

    /// The label of image `index`: in 0..<classNames.count, or -1 (`DatasetFormat.noLabel`)
    /// in an unlabelled file.
    public func label(at index: Int) -> Int {
        precondition(index >= 0 && index < count, "DatasetFile.label: index \(index) outside 0..<\(count)")
        return Int(labels[index])
    }

    /// Throws unless the file holds labels, for the uses that need them (training,
    /// validation, evaluation); `use` says what the file was given as ("data.train",
    /// "evaluated"). The error names the file and the uses an unlabelled file has.
    public func requireLabels(for use: String) throws {
        guard isLabelled else {
            throw DatasetError(path: path, kind: .unlabelled,
                               reason: "holds unlabelled images (\"labelled\": false), so it cannot be \(use): it can only "
                                   + "be data.unlabeled (paired by clipit pair) or a prediction input (clipit predict --images)")
        }
    }

    /// The uint8 HWC bytes of image `index` (height × width × channels), pointing into the
    /// mapping: valid while this object lives.
    public func imageBytes(at index: Int) -> UnsafeBufferPointer<UInt8> {
        precondition(index >= 0 && index < count, "DatasetFile.imageBytes: index \(index) outside 0..<\(count)")
        let start = file.base!.advanced(by: imagesOffset + index * imageByteCount)
            .assumingMemoryBound(to: UInt8.self)
        return UnsafeBufferPointer(start: start, count: imageByteCount)
    }
}

// MARK: - Writer

/// Streams a `.cds` file: the header and JSON block first, then one image at a time, then
/// labels and the checksum on `finish()`, which makes the file appear atomically (a
/// temporary in the same directory, fsync, rename). Dropped without `finish()`, nothing
/// is left behind. A labelled file (`info.labelled`, the default) takes
/// `append(image:label:)`; an unlabelled one `append(image:)`, and stores -1 as every label.
public final class DatasetWriter {
    public let path: String
    public let height: Int
    public let width: Int
    public let channels: Int
    public let count: Int
    public let info: DatasetInfo
    private let output: AtomicFileWriter
    private var labels: [Int32] = []
    private var finished = false

    /// Starts writing `count` images of `height × width × channels` uint8 HWC.
    public init(path: String, height: Int, width: Int, channels: Int, count: Int,
                info: DatasetInfo) throws {
        func invalid(_ reason: String) -> DatasetError {
            DatasetError(path: path, kind: .invalidArgument, reason: reason)
        }
        guard height > 0, width > 0, [1, 3, 4].contains(channels), count >= 0 else {
            throw invalid("cannot write images of \(height)×\(width)×\(channels) (count \(count)): sizes must be positive and channels 1, 3 or 4")
        }
        guard !info.classNames.isEmpty else { throw invalid("a dataset needs at least one class name") }
        if let ids = info.ids, ids.count != count {
            throw invalid("\(ids.count) ids for \(count) images")
        }
        for (key, values) in info.attributes where values.count != count {
            throw invalid("attribute \"\(key)\" has \(values.count) values for \(count) images")
        }
        self.path = path
        self.height = height
        self.width = width
        self.channels = channels
        self.count = count
        self.info = info
        labels.reserveCapacity(count)
        output = try withDatasetErrors { try AtomicFileWriter(path: path, computingCRC32: true) }

        let json = Array(info.json().utf8)
        let imagesOffset = DatasetFormat.fixedHeaderSize + DatasetFormat.align8(json.count)
        let labelsOffset = DatasetFormat.align8(imagesOffset + count * height * width * channels)
        try withDatasetErrors {
            try output.write(DatasetFormat.magic)
            try output.write(integer: DatasetFormat.version)
            try output.write(integer: UInt32(DatasetFormat.fixedHeaderSize))
            for value in [height, width, channels, info.classNames.count] { try output.write(integer: UInt32(value)) }
            for value in [count, json.count, imagesOffset, labelsOffset] { try output.write(integer: UInt64(value)) }
            try output.write(json)
            try output.write(Array(repeating: 0x20, count: DatasetFormat.align8(json.count) - json.count))
        }
    }

    /// Appends one image (height × width × channels bytes, HWC) with its label, to a
    /// labelled file.
    public func append(image: UnsafeBufferPointer<UInt8>, label: Int) throws {
        guard info.labelled else {
            throw DatasetError(path: path, kind: .invalidArgument,
                               reason: "image \(labels.count) given label \(label), but the file holds unlabelled images "
                                   + "(DatasetInfo.labelled is false): append it with append(image:)")
        }
        guard label >= 0, label < info.classNames.count else {
            throw DatasetError(path: path, kind: .labelOutOfRange,
                               reason: "label out of range: image \(labels.count) has label \(label), but there are \(info.classNames.count) classes")
        }
        try append(image, storing: Int32(label))
    }

    /// Appends one image without a label, to an unlabelled file (`info.labelled` false).
    public func append(image: UnsafeBufferPointer<UInt8>) throws {
        guard !info.labelled else {
            throw DatasetError(path: path, kind: .invalidArgument,
                               reason: "image \(labels.count) has no label, but the file is labelled: append it with "
                                   + "append(image:label:), or write an unlabelled file (DatasetInfo.labelled false)")
        }
        try append(image, storing: DatasetFormat.noLabel)
    }

    /// Appends one image given as an array, with its label.
    public func append(image: [UInt8], label: Int) throws {
        try image.withUnsafeBufferPointer { try append(image: $0, label: label) }
    }

    /// Appends one image given as an array, without a label.
    public func append(image: [UInt8]) throws {
        try image.withUnsafeBufferPointer { try append(image: $0) }
    }

    private func append(_ image: UnsafeBufferPointer<UInt8>, storing label: Int32) throws {
        guard !finished else {
            throw DatasetError(path: path, kind: .invalidArgument, reason: "append after finish")
        }
        guard image.count == height * width * channels else {
            throw DatasetError(path: path, kind: .invalidArgument,
                               reason: "image \(labels.count) has \(image.count) bytes, expected \(height)×\(width)×\(channels) = \(height * width * channels)")
        }
        guard labels.count < count else {
            throw DatasetError(path: path, kind: .invalidArgument, reason: "more than the \(count) announced images appended")
        }
        try withDatasetErrors { try output.write(UnsafeRawBufferPointer(image)) }
        labels.append(label)
    }

    /// Writes labels and checksum and moves the file into place.
    public func finish() throws {
        guard !finished else { return }
        guard labels.count == count else {
            output.abandon()
            finished = true
            throw DatasetError(path: path, kind: .invalidArgument,
                               reason: "\(labels.count) images appended but \(count) announced; nothing was written")
        }
        let imagesEnd = output.bytesWritten
        try withDatasetErrors {
            try output.writeZeros(DatasetFormat.align8(imagesEnd) - imagesEnd)
            try labels.map { $0.littleEndian }.withUnsafeBytes { try output.write($0) }
            try output.write(integer: output.crc32)
            try output.commit()
        }
        finished = true
    }
}
