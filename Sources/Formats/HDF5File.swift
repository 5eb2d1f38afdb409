// HDF5 files read through libhdf5 (CHDF5): a dataset's shape, element type and chunk
// layout, and ranges of rows (hyperslabs along the first axis). HDF5's own error printing
// is turned off; every failure is an `ImportError` naming the file, the dataset and
// HDF5's most specific message. Nothing outside this file sees an HDF5 type or id.
import CHDF5
import Foundation

/// The element type of an HDF5 dataset, as far as clipit's readers care.
public enum HDF5ElementType: Equatable, Sendable, CustomStringConvertible {
    case unsignedInteger(bytes: Int)
    case signedInteger(bytes: Int)
    case float(bytes: Int)
    /// Any other class (string, compound, enum, …), by HDF5's class name.
    case other(String)

    /// numpy's spelling: "uint8", "int64", "float32", or the HDF5 class name.
    public var description: String {
        switch self {
        case .unsignedInteger(let bytes): return "uint\(8 * bytes)"
        case .signedInteger(let bytes): return "int\(8 * bytes)"
        case .float(let bytes): return "float\(8 * bytes)"
        case .other(let name): return name
        }
    }

    /// Whether the elements are integers of any width and sign.
    public var isInteger: Bool {
        switch self {
        case .unsignedInteger, .signedInteger: return true
        case .float, .other: return false
        }
    }
}

/// An HDF5 file opened read-only. Datasets opened from it keep it open.
public final class HDF5File {
    public let path: String
    fileprivate let id: hid_t

    /// Opens `path` read-only (HDF5's file locking off, so that read-only imports work on
    /// file systems without `flock`, as cluster file systems often are).
    ///
    /// - Throws: `ImportError`: `.io` (missing or unreadable), `.badSignature` (a gzip file —
    ///   the message says to gunzip it — or no HDF5 signature), `.corrupt` / `.truncated`
    ///   (HDF5 could not read the superblock or root group; its message is quoted).
    public init(path: String) throws {
        self.path = path
        silenceHDF5ErrorPrinting()
        let head = try Self.readHead(path)
        if head.starts(with: [0x1F, 0x8B]) {
            let command = path.hasSuffix(".gz") ? "gunzip '\(path)'" : "mv '\(path)' '\(path).gz' && gunzip '\(path).gz'"
            throw ImportError(path: path, kind: .badSignature,
                              reason: "the file is gzip-compressed (as published on Zenodo), not HDF5: gunzip first: \(command)")
        }
        let access = H5Pcreate(chdf5_p_file_access())
        guard access >= 0 else { throw hdf5Failure(path: path, kind: .io, "cannot create a file access property list") }
        defer { H5Pclose(access) }
        _ = H5Pset_file_locking(access, false, true)
        let id = H5Fopen(path, chdf5_f_acc_rdonly(), access)
        guard id >= 0 else {
            let message = takeHDF5ErrorMessage()
            if !head.starts(with: hdf5Signature) && !message.contains("truncated") {
                throw ImportError(path: path, kind: .badSignature,
                                  reason: "not an HDF5 file (no HDF5 signature; HDF5 says: \(message)); pass the published .h5 file")
            }
            throw ImportError(path: path, kind: message.contains("truncated") ? .truncated : .corrupt,
                              reason: "HDF5 cannot open the file (\(message)); the file is corrupt or incomplete — download it again")
        }
        self.id = id
    }

    deinit { H5Fclose(id) }

    /// Whether the root group has a link named `name`.
    public func contains(_ name: String) -> Bool {
        silenceHDF5ErrorPrinting()
        let exists = H5Lexists(id, name, chdf5_p_default())
        if exists < 0 { _ = takeHDF5ErrorMessage() }
        return exists > 0
    }

    /// The names of the root group's members (at most `limit`), for error messages.
    public func memberNames(limit: Int = 20) -> [String] {
        silenceHDF5ErrorPrinting()
        var info = H5G_info_t()
        guard H5Gget_info(id, &info) >= 0 else { _ = takeHDF5ErrorMessage(); return [] }
        var names: [String] = []
        for index in 0..<min(Int(info.nlinks), limit) {
            let length = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), nil, 0, chdf5_p_default())
            guard length >= 0, length < 4096 else { _ = takeHDF5ErrorMessage(); break }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            guard H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), &buffer, buffer.count,
                                     chdf5_p_default()) >= 0 else { _ = takeHDF5ErrorMessage(); break }
            names.append(String(cString: buffer))
        }
        return names
    }

    /// Opens the dataset `name` of the root group and reads its shape, element type and
    /// chunk shape.
    ///
    /// - Parameter chunkCacheBytes: the dataset's chunk cache (HDF5's default is 1 MiB):
    ///   reads that cover part of a chunk decompress it again unless it fits.
    /// - Throws: `ImportError` `.invalidInput` when there is no such dataset (the message
    ///   lists the file's members), `.corrupt` when HDF5 cannot read its header.
    public func dataset(_ name: String, chunkCacheBytes: Int? = nil) throws -> HDF5Dataset {
        guard contains(name) else {
            let members = memberNames()
            throw ImportError(path: path, kind: .invalidInput,
                              reason: "no dataset '\(name)' (the file holds: \(members.isEmpty ? "nothing" : members.joined(separator: ", "))); pass the published file")
        }
        return try HDF5Dataset(file: self, name: name, chunkCacheBytes: chunkCacheBytes)
    }

    private static func readHead(_ path: String) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot open the file for reading (permissions?)" : "no such file"
            throw ImportError(path: path, kind: .io, reason: reason)
        }
        defer { try? handle.close() }
        do {
            return [UInt8](try handle.read(upToCount: 8) ?? Data())
        } catch {
            throw ImportError(path: path, kind: .io, reason: "cannot read the file (\(error.localizedDescription))")
        }
    }
}

/// The 8 bytes an HDF5 superblock starts with (at offset 0 unless the file has a user block).
let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

/// One dataset of an open `HDF5File`.
public final class HDF5Dataset {
    /// The file's path and the dataset's name, for messages.
    public let path: String
    public let name: String
    /// The extent of every axis (HDF5's dims, checked to fit in `Int`).
    public let shape: [Int]
    public let elementType: HDF5ElementType
    /// Bytes of one element in the file.
    public let elementBytes: Int
    /// The chunk extent of every axis, nil for contiguous or compact storage.
    public let chunkShape: [Int]?
    private let file: HDF5File  // kept open while the dataset is
    private let id: hid_t

    fileprivate init(file: HDF5File, name: String, chunkCacheBytes: Int?) throws {
        self.file = file
        self.path = file.path
        self.name = name
        silenceHDF5ErrorPrinting()
        func fail(_ what: String) -> ImportError { hdf5Failure(path: file.path, kind: .corrupt, "dataset '\(name)': \(what)") }

        var access = chdf5_p_default()
        if let chunkCacheBytes {
            access = H5Pcreate(chdf5_p_dataset_access())
            guard access >= 0 else { throw fail("cannot create a dataset access property list") }
            // 521 hash slots (a prime, HDF5's default); preemption weight 1: fully read chunks go first.
            _ = H5Pset_chunk_cache(access, 521, chunkCacheBytes, 1)
        }
        defer { if access != chdf5_p_default() { H5Pclose(access) } }
        let id = H5Dopen2(file.id, name, access)
        guard id >= 0 else { throw fail("HDF5 cannot open it") }
        var keep = false
        defer { if !keep { H5Dclose(id) } }

        let space = H5Dget_space(id)
        guard space >= 0 else { throw fail("HDF5 cannot read its dataspace") }
        defer { H5Sclose(space) }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0, rank <= 32 else { throw fail("HDF5 cannot read its rank") }
        var dims = [hsize_t](repeating: 0, count: max(Int(rank), 1))
        var maximumDims = dims
        guard H5Sget_simple_extent_dims(space, &dims, &maximumDims) >= 0 else { throw fail("HDF5 cannot read its dimensions") }
        dims = Array(dims.prefix(Int(rank)))
        guard dims.allSatisfy({ $0 <= hsize_t(Int.max) }) else {
            throw ImportError(path: file.path, kind: .corrupt, reason: "dataset '\(name)' has dimensions \(dims) beyond any file size; the file is corrupt")
        }
        shape = dims.map { Int($0) }

        let type = H5Dget_type(id)
        guard type >= 0 else { throw fail("HDF5 cannot read its element type") }
        defer { H5Tclose(type) }
        let size = H5Tget_size(type)
        guard size > 0 else { throw fail("HDF5 cannot read its element size") }
        elementBytes = size
        switch H5Tget_class(type) {
        case H5T_INTEGER:
            elementType = H5Tget_sign(type) == H5T_SGN_NONE ? .unsignedInteger(bytes: size) : .signedInteger(bytes: size)
        case H5T_FLOAT: elementType = .float(bytes: size)
        case H5T_STRING: elementType = .other("string")
        case H5T_COMPOUND: elementType = .other("compound")
        case H5T_ENUM: elementType = .other("enum")
        case H5T_ARRAY: elementType = .other("array")
        case H5T_NO_CLASS: throw fail("HDF5 cannot read its element type class")
        default: elementType = .other("HDF5 class \(H5Tget_class(type).rawValue)")
        }

        let creation = H5Dget_create_plist(id)
        guard creation >= 0 else { throw fail("HDF5 cannot read its creation properties") }
        defer { H5Pclose(creation) }
        if H5Pget_layout(creation) == H5D_CHUNKED, rank > 0 {
            var chunk = [hsize_t](repeating: 0, count: Int(rank))
            guard H5Pget_chunk(creation, rank, &chunk) == rank, chunk.allSatisfy({ $0 > 0 && $0 <= hsize_t(UInt32.max) }) else {
                throw fail("HDF5 cannot read its chunk shape")
            }
            // Chunks may exceed a fixed dimension only in a damaged file (HDF5 refuses to
            // create them), and HDF5 1.10 then reads past its buffers.
            for axis in 0..<Int(rank) where maximumDims[axis] != hsize_t.max && chunk[axis] > maximumDims[axis] {
                throw ImportError(path: file.path, kind: .corrupt,
                                  reason: "dataset '\(name)' has chunks \(chunk) larger than its fixed extent \(Array(maximumDims.prefix(Int(rank)))) along axis \(axis); the file is corrupt — download it again")
            }
            chunkShape = chunk.map { Int($0) }
        } else {
            chunkShape = nil
        }
        self.id = id
        keep = true
    }

    deinit { H5Dclose(id) }

    /// Elements of one row: the product of every axis but the first (1 for rank ≤ 1).
    /// Nil when it overflows `Int`.
    public var elementsPerRow: Int? {
        var product = 1
        for extent in shape.dropFirst() {
            let (next, overflow) = product.multipliedReportingOverflow(by: extent)
            if overflow { return nil }
            product = next
        }
        return product
    }

    /// Bytes of one chunk once decompressed (HDF5 holds a whole chunk to read any part of
    /// it), nil for contiguous or compact storage; `Int.max` when the product overflows.
    public var chunkBytes: Int? {
        chunkShape.map { extents in
            var product = elementBytes
            for extent in extents {
                let (next, overflow) = product.multipliedReportingOverflow(by: extent)
                if overflow { return Int.max }
                product = next
            }
            return product
        }
    }

    /// Bytes HDF5 has allocated for the data in the file (after compression), 0 when
    /// nothing was ever written; an upper bound on what a read can decode from the file.
    public var storageBytes: Int {
        silenceHDF5ErrorPrinting()
        let bytes = H5Dget_storage_size(id)
        if bytes == 0 { _ = takeHDF5ErrorMessage() }
        return Int(clamping: bytes)
    }

    /// Reads rows `rows` (all of every other axis) of a uint8 dataset into `buffer`, which
    /// holds exactly `rows.count × elementsPerRow` bytes; row-major, no conversion.
    ///
    /// - Throws: `ImportError` `.invalidInput` when the dataset is not uint8, `.corrupt`
    ///   when HDF5 cannot read or decompress the data (its message quoted).
    public func readUInt8(rows: Range<Int>, into buffer: UnsafeMutableBufferPointer<UInt8>) throws {
        guard elementType == .unsignedInteger(bytes: 1) else {
            throw ImportError(path: path, kind: .invalidInput, reason: "dataset '\(name)' holds \(elementType), expected uint8")
        }
        try read(rows: rows, memoryType: chdf5_native_uchar(), into: UnsafeMutableRawBufferPointer(buffer), elementSize: 1)
    }

    /// Reads rows `rows` of an integer dataset of any width and sign into `buffer`
    /// (`rows.count × elementsPerRow` values), converted by HDF5 to Int64 (exact, except
    /// uint64 values above Int64.max, which HDF5 clips to Int64.max).
    ///
    /// - Throws: `ImportError` `.invalidInput` when the elements are not integers,
    ///   `.corrupt` when HDF5 cannot read or decompress the data.
    public func readInt64(rows: Range<Int>, into buffer: UnsafeMutableBufferPointer<Int64>) throws {
        guard elementType.isInteger else {
            throw ImportError(path: path, kind: .invalidInput, reason: "dataset '\(name)' holds \(elementType), expected integers")
        }
        try read(rows: rows, memoryType: chdf5_native_int64(), into: UnsafeMutableRawBufferPointer(buffer), elementSize: 8)
    }

    private func read(rows: Range<Int>, memoryType: hid_t, into buffer: UnsafeMutableRawBufferPointer, elementSize: Int) throws {
        precondition(!shape.isEmpty, "HDF5Dataset.read: '\(name)' is a scalar, it has no rows")
        precondition(rows.lowerBound >= 0 && rows.upperBound <= shape[0], "HDF5Dataset.read: rows \(rows) outside 0..<\(shape[0])")
        guard let perRow = elementsPerRow else { preconditionFailure("HDF5Dataset.read: a row of '\(name)' overflows Int") }
        precondition(buffer.count == rows.count * perRow * elementSize,
                     "HDF5Dataset.read: buffer of \(buffer.count) bytes for \(rows.count) rows of \(perRow) × \(elementSize) bytes")
        guard !rows.isEmpty, perRow > 0 else { return }
        silenceHDF5ErrorPrinting()
        func fail(_ what: String) -> ImportError {
            hdf5Failure(path: path, kind: .corrupt, "dataset '\(name)', rows \(rows.lowerBound)..<\(rows.upperBound): \(what)")
        }
        let fileSpace = H5Dget_space(id)
        guard fileSpace >= 0 else { throw fail("HDF5 cannot read its dataspace") }
        defer { H5Sclose(fileSpace) }
        var start = [hsize_t](repeating: 0, count: shape.count)
        var count = shape.map { hsize_t($0) }
        start[0] = hsize_t(rows.lowerBound)
        count[0] = hsize_t(rows.count)
        guard H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, nil, count, nil) >= 0 else {
            throw fail("HDF5 cannot select the rows")
        }
        var memoryDims = [hsize_t(rows.count * perRow)]
        let memorySpace = H5Screate_simple(1, &memoryDims, nil)
        guard memorySpace >= 0 else { throw fail("HDF5 cannot create the memory dataspace") }
        defer { H5Sclose(memorySpace) }
        let status = H5Dread(id, memoryType, memorySpace, fileSpace, chdf5_p_default(), buffer.baseAddress)
        guard status >= 0 else { throw fail("HDF5 cannot read the data") }
    }
}

// MARK: - Errors

/// Turns off HDF5's printing of error stacks to stderr for the calling thread (HDF5 keeps
/// one error stack per thread): failures are reported as `ImportError`s instead.
private func silenceHDF5ErrorPrinting() {
    _ = H5Eset_auto2(chdf5_e_default(), nil, nil)
}

/// The most specific description on the calling thread's HDF5 error stack (the innermost
/// call's, e.g. "truncated file: eof = 1024, …"), or "no detail" when the stack is empty;
/// clears the stack.
private func takeHDF5ErrorMessage() -> String {
    final class Descriptions { var items: [String] = [] }
    let descriptions = Descriptions()
    _ = H5Ewalk2(chdf5_e_default(), H5E_WALK_UPWARD, { _, record, data in
        if let record, let text = record.pointee.desc, let data {
            Unmanaged<Descriptions>.fromOpaque(data).takeUnretainedValue().items.append(String(cString: text))
        }
        return 0
    }, Unmanaged.passUnretained(descriptions).toOpaque())
    _ = H5Eclear2(chdf5_e_default())
    return descriptions.items.first { !$0.isEmpty } ?? "no detail"
}

/// An `ImportError` for a failed HDF5 call: `what` and HDF5's most specific message.
private func hdf5Failure(path: String, kind: ImportError.Kind, _ what: String) -> ImportError {
    let message = takeHDF5ErrorMessage()
    return ImportError(path: path, kind: message.contains("truncated") ? .truncated : kind,
                       reason: "\(what) (HDF5: \(message)); the file is corrupt or incomplete — download it again")
}
