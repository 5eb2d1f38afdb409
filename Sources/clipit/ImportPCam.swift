import ArgumentParser
import DataParallel
import Datasets

/// `clipit import pcam`
struct ImportPCam: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcam",
        abstract: "PatchCamelyon's published HDF5 files to DIR/{train,val,test}.cds (classes normal, tumor).",
        discussion: """
            Reads camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5 (gunzip the downloaded \
            .h5.gz files first): dataset x, uint8 (N, 96, 96, 3), and dataset y, (N, 1, 1, 1) \
            labels, 1 = tumour in the centre 32×32 region. The images are streamed a few \
            hundred at a time. Splits with neither file are skipped and named.
            """)

    @Option(help: "The dataset: the folder holding the camelyonpatch_level_2_split_*.h5 files.")
    var data: String?

    @Option(name: .customLong("root"), help: aliasHelp(of: "data"))
    var rootAlias: String?

    @Option(help: "Output folder for train/val/test.cds (created if missing).")
    var out: String

    func validate() throws {
        _ = try requiredRenamedOption(data, rootAlias, name: "data", oldName: "root")
    }

    func run() throws {
        try refuseSeveralRanks()
        let folder = try requiredRenamedOption(data, rootAlias, name: "data", oldName: "root")
        let result = try PCamImporter.importFolder(directory: folder, outputDirectory: out,
                                                   progress: ItemProgress.phases("import pcam", unit: "img/s", enabled: true))
        for split in result.splits {
            print("import pcam: \(split.path): \(split.count) images \(split.height)×\(split.width) RGB, per class \(zip(split.classNames, split.classCounts).map { "\($0) \($1)" }.joined(separator: ", "))")
        }
        for published in result.missing {
            print("import pcam: no \(published) split: \(PCamImporter.fileName(split: published, array: "{x,y}")) not in \(folder)")
        }
    }
}
