import Formats
import Foundation

/// The Stage 1 output for one image.
public struct PairRecord: Equatable, Sendable {
    /// Global image index in the split (records are stored in this order).
    public var image: Int
    /// The report chosen by the pairing strategy (index into the report corpus).
    public var report: Int
    /// Cosine similarity of the image with the chosen report.
    public var score: Float
    /// The most similar reports, best first (ties: lower index), and their cosines.
    public var topReports: [Int]
    public var topScores: [Float]
    /// Labels where known (`nil` otherwise).
    public var imageLabel: Int?
    public var reportLabel: Int?

    public init(image: Int, report: Int, score: Float, topReports: [Int], topScores: [Float],
                imageLabel: Int? = nil, reportLabel: Int? = nil) {
        self.image = image
        self.report = report
        self.score = score
        self.topReports = topReports
        self.topScores = topScores
        self.imageLabel = imageLabel
        self.reportLabel = reportLabel
    }
}

/// The pairs of one split: for every image, the chosen report, its score and the top-k
/// most similar reports.
///
/// On disk (`write(to:)`): JSON lines, UTF-8, one object per line. Line 1 is the header
///
///     {"format":"clipit-pairs","image_count":N,"recorded_k":K,"report_count":M,
///      "seed":S,"split":"train","strategy":"top1","version":2}
///
/// followed by exactly N record lines in image order,
///
///     {"image":0,"report":17,"score":0.4123,"top":[17,3,9],"top_scores":[0.4123,0.39,0.2],
///      "image_label":2,"report_label":2}
///
/// where the label keys are present only when known. Version 1 files (camelCase keys:
/// `imageCount`, `topScores`, …) are read too. Floats are written in their
/// shortest round-trip form, so reading gives back the same bits. See
/// docs/pairing-and-metrics.md.
public struct PairsFile: Equatable, Sendable {
    public static let formatName = "clipit-pairs"
    public static let formatVersion = 2
    /// Versions `init(jsonLines:)` reads: 1 differs only in its camelCase keys.
    public static let readableVersions = 1...2

    public var split: String
    public var strategy: PairingStrategy
    public var seed: UInt64
    public var reportCount: Int
    /// Length of every record's `topReports`.
    public var recordedK: Int
    /// One record per image, `records[i].image == i`.
    public var records: [PairRecord]

    public init(split: String, strategy: PairingStrategy, seed: UInt64, reportCount: Int, recordedK: Int,
                records: [PairRecord]) {
        self.split = split
        self.strategy = strategy
        self.seed = seed
        self.reportCount = reportCount
        self.recordedK = recordedK
        self.records = records
    }

    /// Number of images.
    public var imageCount: Int { records.count }

    /// The chosen report of each image, in image order (what Stage 2 consumes).
    public var reportIndices: [Int] { records.map(\.report) }

    struct Header: Codable, Equatable {
        var format: String
        var version: Int
        var split: String
        var strategy: PairingStrategy
        var seed: UInt64
        var imageCount: Int
        var reportCount: Int
        var recordedK: Int
    }

    struct RecordLine: Codable {
        var image: Int
        var report: Int
        var score: Float
        var top: [Int]
        var topScores: [Float]
        var imageLabel: Int?
        var reportLabel: Int?
    }

    /// The JSON-lines encoding (header line, then one line per record). Throws when a
    /// score is not finite (JSON has no NaN or ∞).
    public func jsonLines() throws -> Data {
        let encoder = ProjectJSON.encoder(pretty: false)
        let header = Header(format: Self.formatName, version: Self.formatVersion, split: split, strategy: strategy,
                            seed: seed, imageCount: imageCount, reportCount: reportCount, recordedK: recordedK)
        var text = String(decoding: try encoder.encode(header), as: UTF8.self) + "\n"
        for record in records {
            guard record.score.isFinite, record.topScores.allSatisfy(\.isFinite) else {
                throw PairsFileError("image \(record.image) has a non-finite score; it cannot be written as JSON")
            }
            text += "{\"image\":\(record.image),\"report\":\(record.report),\"score\":\(record.score),"
            text += "\"top\":[" + record.topReports.map(String.init).joined(separator: ",") + "],"
            text += "\"top_scores\":[" + record.topScores.map { "\($0)" }.joined(separator: ",") + "]"
            if let label = record.imageLabel { text += ",\"image_label\":\(label)" }
            if let label = record.reportLabel { text += ",\"report_label\":\(label)" }
            text += "}\n"
        }
        return Data(text.utf8)
    }

    /// Parses `jsonLines()` output, checking the header, the record count, the image
    /// order and every index range.
    public init(jsonLines data: Data) throws {
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)[...]
        guard let headerLine = lines.popFirst() else { throw PairsFileError("empty file (no header line)") }
        let decoder = ProjectJSON.decoder()
        let header: Header
        do {
            header = try decoder.decode(Header.self, from: Data(headerLine))
        } catch {
            throw PairsFileError("line 1 is not a pairs-file header (\(error))")
        }
        guard header.format == Self.formatName, Self.readableVersions.contains(header.version) else {
            throw PairsFileError("format '\(header.format)' version \(header.version); "
                                     + "expected '\(Self.formatName)' version \(Self.readableVersions)")
        }
        guard lines.count == header.imageCount else {
            throw PairsFileError("header announces \(header.imageCount) images, the file has \(lines.count) records "
                                     + "(truncated write?)")
        }
        var records: [PairRecord] = []
        records.reserveCapacity(header.imageCount)
        for (i, line) in lines.enumerated() {
            let lineNumber = i + 2
            let r: RecordLine
            do {
                r = try decoder.decode(RecordLine.self, from: Data(line))
            } catch {
                throw PairsFileError("line \(lineNumber) is not a pair record (\(error))")
            }
            guard r.image == i else {
                throw PairsFileError("line \(lineNumber) holds image \(r.image), expected \(i) (records are in image order)")
            }
            let indices = [r.report] + r.top
            guard indices.allSatisfy({ $0 >= 0 && $0 < header.reportCount }) else {
                throw PairsFileError("line \(lineNumber): report index outside 0..<\(header.reportCount)")
            }
            guard r.top.count == header.recordedK, r.topScores.count == header.recordedK else {
                throw PairsFileError("line \(lineNumber): \(r.top.count) top reports, header says \(header.recordedK)")
            }
            records.append(PairRecord(image: r.image, report: r.report, score: r.score, topReports: r.top,
                                      topScores: r.topScores, imageLabel: r.imageLabel, reportLabel: r.reportLabel))
        }
        self.init(split: header.split, strategy: header.strategy, seed: header.seed, reportCount: header.reportCount,
                  recordedK: header.recordedK, records: records)
    }

    /// Writes `jsonLines()` to `url` atomically (`AtomicFileWriter`: temporary file, fsync, rename).
    public func write(to url: URL) throws {
        try AtomicFileWriter.write(jsonLines(), to: url.path)
    }

    /// Reads a file written by `write(to:)`.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw PairsFileError("cannot read \(url.path): \(error.localizedDescription) "
                                     + "(run the pairing stage first)")
        }
        do {
            try self.init(jsonLines: data)
        } catch let error as PairsFileError {
            throw PairsFileError("\(url.path): \(error.reason)")
        }
    }

    /// Statistics of the chosen pairs (see `PairsSummary`).
    public func summary(histogramBins: Int = 20) -> PairsSummary {
        PairsSummary(self, histogramBins: histogramBins)
    }
}

/// A pairs file that cannot be written or read.
public struct PairsFileError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "pairs file: \(reason)" }
}

/// A histogram of cosine scores over the fixed range [−1, 1] (so histograms of
/// different splits and strategies line up). Bin b covers
/// [−1 + b·w, −1 + (b+1)·w) with w = 2/bins, the last bin including 1; scores outside
/// the range (float rounding of a cosine) count in the end bins.
public struct ScoreHistogram: Codable, Equatable, Sendable {
    public var lower: Double
    public var upper: Double
    public var counts: [Int]

    public init(scores: [Float], bins: Int) {
        precondition(bins >= 1, "ScoreHistogram: bins must be positive, got \(bins)")
        lower = -1
        upper = 1
        counts = [Int](repeating: 0, count: bins)
        let width = (upper - lower) / Double(bins)
        for score in scores {
            let bin = Int(((Double(score) - lower) / width).rounded(.down))
            counts[min(max(bin, 0), bins - 1)] += 1
        }
    }
}

/// The summary written beside a pairs file: score statistics of the chosen pairs, how
/// often the chosen report's label matches the image's (where both are known), and
/// how concentrated the choice is on few reports.
public struct PairsSummary: Codable, Equatable, Sendable {
    public var split: String
    public var strategy: String
    public var imageCount: Int
    public var reportCount: Int
    /// Statistics of the chosen pairs' scores; `nil` for an empty split. The median of
    /// an even count is the mean of the two middle scores.
    public var meanScore: Double?
    public var medianScore: Double?
    public var minScore: Double?
    public var maxScore: Double?
    public var histogram: ScoreHistogram
    /// Number of different reports chosen, and the most images that share one report.
    public var distinctReports: Int
    public var maxImagesPerReport: Int
    /// Pairs where both labels are known, those whose labels agree, and their ratio
    /// (`nil` when no pair has both labels).
    public var labelledPairs: Int
    public var labelMatches: Int
    public var labelMatchRate: Double?

    public init(_ pairs: PairsFile, histogramBins: Int = 20) {
        let scores = pairs.records.map(\.score)
        split = pairs.split
        strategy = pairs.strategy.description
        imageCount = pairs.imageCount
        reportCount = pairs.reportCount
        if scores.isEmpty {
            meanScore = nil
            medianScore = nil
            minScore = nil
            maxScore = nil
        } else {
            let sorted = scores.map(Double.init).sorted()
            meanScore = sorted.reduce(0, +) / Double(sorted.count)
            let middle = sorted.count / 2
            medianScore = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
            minScore = sorted.first
            maxScore = sorted.last
        }
        histogram = ScoreHistogram(scores: scores, bins: histogramBins)
        var uses: [Int: Int] = [:]
        for record in pairs.records { uses[record.report, default: 0] += 1 }
        distinctReports = uses.count
        maxImagesPerReport = uses.values.max() ?? 0
        var labelled = 0, matches = 0
        for record in pairs.records {
            guard let imageLabel = record.imageLabel, let reportLabel = record.reportLabel else { continue }
            labelled += 1
            if imageLabel == reportLabel { matches += 1 }
        }
        labelledPairs = labelled
        labelMatches = matches
        labelMatchRate = labelled == 0 ? nil : Double(matches) / Double(labelled)
    }

    /// Pretty-printed JSON with sorted keys.
    public func jsonData() throws -> Data {
        try prettyJSON(self)
    }
}
