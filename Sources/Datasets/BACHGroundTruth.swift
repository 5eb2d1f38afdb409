// BACH (ICIAR 2018 grand challenge on breast cancer histology) ships its microscopy photos
// as `ICIAR2018_BACH_Challenge/Photos/<class>/<name>.tif` plus `Photos/microscopy_ground_truth.csv`,
// rows "image name,class". The folders are the labels the importer uses; the table is a
// second statement of the same labels, so it is checked, not trusted instead of them.
import Formats
import ImageDecoding
import Foundation

public enum BACHGroundTruth {
    /// The file name BACH gives its label table, looked for in the imported root folder.
    public static let fileName = "microscopy_ground_truth.csv"

    /// When `root/microscopy_ground_truth.csv` exists: every row must name an image that
    /// lies directly in its class's folder, and every image of `files` (from
    /// `FolderImporter.scan`) must have exactly one row. Blank lines and a header row
    /// (a first row whose name has no image extension) are skipped; fields are trimmed.
    ///
    /// - Returns: the number of rows checked, nil when there is no such file.
    /// - Throws: `ImportError` (`invalidInput`) naming `file:line` or the image.
    @discardableResult
    public static func check(root: String, classNames: [String], files: [(label: Int, path: String)]) throws -> Int? {
        let path = root + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ImportError(path: path, kind: .io, reason: "cannot read the ground-truth table as UTF-8 text (\(error.localizedDescription))")
        }
        var imported: [String: String] = [:]   // relative path → class folder
        for file in files { imported[file.path] = classNames[file.label] }
        var listed: [String: Int] = [:]         // relative path → line
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = index + 1
            let fields = rawLine.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            if fields.allSatisfy(\.isEmpty) { continue }
            func fail(_ reason: String) -> ImportError {
                ImportError(path: path, line: line, kind: .invalidInput, reason: reason + "; fix the table or the folders, or move the table away to import by folders only")
            }
            guard fields.count == 2, !fields[0].isEmpty, !fields[1].isEmpty else {
                throw fail("expected \"image name,class\", got \(fields.count) fields")
            }
            let (name, label) = (fields[0], fields[1])
            if listed.isEmpty && !ImageDecoder.extensions.contains((name as NSString).pathExtension.lowercased()) {
                continue   // a header row
            }
            guard classNames.contains(label) else {
                throw fail("class '\(label)' of '\(name)' is not one of the class folders (\(classNames.joined(separator: ", ")))")
            }
            let relative = label + "/" + name
            guard imported[relative] != nil else {
                let elsewhere = files.first { ($0.path as NSString).lastPathComponent == name }
                throw fail("'\(name)' is labelled \(label) but \(elsewhere.map { "lies in \($0.path)" } ?? "is not among the images")")
            }
            if let first = listed[relative] { throw fail("'\(name)' is listed twice (first on line \(first))") }
            listed[relative] = line
        }
        if let missing = files.first(where: { listed[$0.path] == nil }) {
            throw ImportError(path: root + "/" + missing.path, kind: .invalidInput,
                              reason: "the image has no row in \(fileName); add it or move the table away to import by folders only")
        }
        return listed.count
    }
}
