import ArgumentParser
import DataParallel
import Datasets
import Distributed
import Foundation

/// `clipit import`: public datasets and report files into clipit's formats (docs/importing.md).
/// Imports write files once: they refuse to run as several ranks of a launcher.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert public datasets (MedMNIST .npz, PCam HDF5, folders of PNG/JPEG/TIFF images) to .cds files and report tables to JSONL.",
        discussion: "See docs/importing.md.",
        subcommands: [ImportMedMNIST.self, ImportPCam.self, ImportFolder.self, ImportReports.self])
}

/// Throws when this process is one of several ranks of mpirun or srun: every rank would
/// write the same files at once (and print every error once per rank).
func refuseSeveralRanks() throws {
    guard let ranks = Communicators.launcherRankCount(environment: ProcessInfo.processInfo.environment),
          ranks > 1 else { return }
    throw ValidationError("clipit import runs once, not as \(ranks) ranks of mpirun/srun: run it without the launcher")
}


/// `clipit import medmnist`
struct ImportMedMNIST: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "medmnist",
        abstract: "MedMNIST-style .npz (train/val/test _images and _labels) to DIR/{train,val,test}.cds.",
        discussion: """
            Images: uint8 (N, H, W) greyscale or (N, H, W, C) with C = 1, 3 or 4; labels: integers \
            (N,) or (N, 1) (multi-label targets are refused). Stored and deflated archives \
            (numpy.savez / savez_compressed) are read as streams, so large files need little memory.
            """)

    @Option(help: "The dataset: a MedMNIST .npz archive.")
    var data: String?

    @Option(name: .customLong("npz"), help: aliasHelp(of: "data"))
    var npzAlias: String?

    @Option(help: "Output folder for train/val/test.cds (created if missing).")
    var out: String

    func validate() throws {
        _ = try requiredRenamedOption(data, npzAlias, name: "data", oldName: "npz")
    }

    @Option(parsing: .upToNextOption, help: "Class names, one per label value 0, 1, … (default: the label values).")
    var classes: [String] = []

    func run() throws {
        try refuseSeveralRanks()
        let archive = try requiredRenamedOption(data, npzAlias, name: "data", oldName: "npz")
        let splits = try MedMNISTImporter.importNPZ(path: archive, outputDirectory: out,
                                                    classNames: classes.isEmpty ? nil : classes)
        for split in splits {
            print("import medmnist: \(split.path): \(split.count) images \(split.height)×\(split.width)×\(split.channels), per class \(zip(split.classNames, split.classCounts).map { "\($0) \($1)" }.joined(separator: ", "))")
        }
    }
}

/// `clipit import folder`
struct ImportFolder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "folder",
        abstract: "A folder of class sub-folders of PNG, JPEG or TIFF images to one .cds file (classes = sorted sub-folder names).",
        discussion: """
            Layout root/<class>/**/*.{png,jpg,jpeg,tif,tiff} (NCT-CRC-HE-100K as published; BACH's \
            Photos folder, whose microscopy_ground_truth.csv, when present, must agree with the \
            class folders); images become RGB as Pillow's convert("RGB"); hidden files and \
            non-image files are skipped; BMP, GIF and WebP files are errors. Without --size every \
            image must have the size of the first; with --size N each image is resized (bicubic, antialiased; shorter side to N \
            then centre crop) to N×N. Image ids are the paths relative to the root.
            """)

    @Option(help: "The images: a folder holding one sub-folder per class.")
    var images: String?

    @Option(name: .customLong("root"), help: aliasHelp(of: "images"))
    var rootAlias: String?

    @Option(help: "Output file (.cds).")
    var out: String

    @Option(help: "Resize every image to SIZE×SIZE.")
    var size: Int?

    @Option(help: "Split name recorded in the file.")
    var split = "train"

    func validate() throws {
        _ = try requiredRenamedOption(images, rootAlias, name: "images", oldName: "root")
        if let size, size < 1 { throw ValidationError("--size must be positive, got \(size)") }
        guard out.hasSuffix(".cds") else { throw ValidationError("--out must end in .cds, got '\(out)'") }
    }

    func run() throws {
        try refuseSeveralRanks()
        let root = try requiredRenamedOption(images, rootAlias, name: "images", oldName: "root")
        let result = try FolderImporter.importFolder(root: root, output: out, size: size, split: split,
                                                     progress: ItemProgress.callback("import folder", unit: "img/s", enabled: true))
        print("import folder: \(result.path): \(result.count) images \(result.height)×\(result.width) RGB, per class \(zip(result.classNames, result.classCounts).map { "\($0) \($1)" }.joined(separator: ", "))")
        if FileManager.default.fileExists(atPath: root + "/" + BACHGroundTruth.fileName) {
            print("import folder: every label agrees with \(root)/\(BACHGroundTruth.fileName)")
        }
    }
}

/// `clipit import reports`
struct ImportReports: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reports",
        abstract: "A report file (.txt one per line, .jsonl, .csv/.tsv table) to the JSONL corpus format.",
        discussion: """
            CSV: a header row, RFC 4180 quoting (commas, doubled quotes and line breaks inside \
            quoted fields), optional UTF-8 BOM. Default columns: text "text" (or the only column), \
            id "id" (else row-<line>), label "label", tissue "tissue" when present.
            """)

    @Option(help: "The reports: a .txt (one per line), .jsonl, .csv or .tsv file.")
    var reports: String?

    @Option(name: .customLong("in"), help: aliasHelp(of: "reports"))
    var inAlias: String?

    @Option(help: "Output file (.jsonl).")
    var out: String

    /// The input file, under --reports or its old name --in.
    var input: String { get throws { try requiredRenamedOption(reports, inAlias, name: "reports", oldName: "in") } }

    @Option(help: "CSV column holding the report text.")
    var textColumn: String?

    @Option(help: "CSV column holding a unique report id.")
    var idColumn: String?

    @Option(help: "CSV column holding a label (class name or index); may be empty per row.")
    var labelColumn: String?

    @Option(help: "CSV column holding the tissue / site; may be empty per row.")
    var tissueColumn: String?

    func validate() throws {
        _ = try input
        guard out.hasSuffix(".jsonl") else { throw ValidationError("--out must end in .jsonl, got '\(out)'") }
    }

    func run() throws {
        try refuseSeveralRanks()
        let columns = ReportImporter.CSVColumns(text: textColumn, id: idColumn, label: labelColumn, tissue: tissueColumn)
        let corpus = try ReportImporter.convert(input: input, output: out, columns: columns)
        let labelled = corpus.labelNames.filter { $0 != nil }.count
        print("import reports: \(out): \(corpus.count) reports, \(labelled) with a label")
    }
}
