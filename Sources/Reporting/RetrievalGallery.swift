import Datasets
import Foundation
import Retrieval

/// One retrieval example: an image of a split, the report its pairing chose, the score,
/// and whether their labels agree.
public struct RetrievalExample: Sendable {
    /// The image's index in its split.
    public var image: Int
    public var imageLabel: String?
    /// The report's index in the corpus and its id.
    public var report: Int
    public var reportID: String
    public var reportLabel: String?
    /// The pairing's cosine score of the pair.
    public var score: Float
    /// The first lines of the report (`RetrievalGallery.excerpt`) and its whole text.
    public var reportExcerpt: String
    public var reportText: String
    /// Image and report labels agree; nil when either is unknown.
    public var labelsMatch: Bool?
    /// The image as PNG (`Thumbnail`) and its size.
    public var thumbnailPNG: [UInt8]
    public var thumbnailWidth: Int
    public var thumbnailHeight: Int
}

/// The gallery of retrieval examples shown for a pairing.
public enum RetrievalGallery {
    /// `count` image indices chosen deterministically from a split whose pairs' label
    /// agreement is `matches` (nil: a label unknown). When some pairs' labels differ, k =
    /// min(their number, max(1, count/4)) of them are taken, evenly spaced over the
    /// mismatched images; the rest are evenly spaced over the other images (and more
    /// mismatched ones are taken when the other images run out). "Evenly
    /// spaced": the j-th of k picks from n candidates is candidate ⌊j·n/k⌋. The result is
    /// in image order; fewer when the split is smaller than `count`.
    public static func choose(count: Int, matches: [Bool?]) -> [Int] {
        let mismatched = matches.indices.filter { matches[$0] == false }
        let others = matches.indices.filter { matches[$0] != false }
        let wanted = min(max(count, 0), matches.count)
        var fromMismatched = mismatched.isEmpty || wanted == 0 ? 0 : min(mismatched.count, max(1, wanted / 4))
        let fromOthers = min(others.count, wanted - fromMismatched)
        fromMismatched = wanted - fromOthers   // more mismatches when the other images run out
        func evenlySpaced(_ candidates: [Int], _ k: Int) -> [Int] {
            let k = min(max(k, 0), candidates.count)
            return (0..<k).map { candidates[$0 * candidates.count / k] }
        }
        let chosen = evenlySpaced(mismatched, fromMismatched) + evenlySpaced(others, fromOthers)
        return chosen.sorted()
    }

    /// The first `lines` non-empty lines of `text`, joined by " / ", cut at a word
    /// boundary to at most `characters` characters (then ending in "…").
    public static func excerpt(_ text: String, lines: Int = 3, characters: Int = 240) -> String {
        let kept = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.prefix(lines)
        let joined = kept.joined(separator: " / ")
        guard joined.count > characters else { return joined }
        var cut = String(joined.prefix(characters))
        if let space = cut.lastIndex(of: " "), cut.distance(from: cut.startIndex, to: space) > characters / 2 {
            cut = String(cut[..<space])
        }
        return cut + "…"
    }

    /// The examples of `pairs` (one split's pairs file) chosen by `choose(count:matches:)`,
    /// with images from `dataset` (the split the pairs were made for) and reports from
    /// `corpus` (the corpus they index). Labels come from the pairs file where it records
    /// them, else from the dataset (none for an unlabelled one) and the corpus.
    /// - Throws: `ReportingError` when the pairs do not fit the dataset or the corpus.
    public static func examples(pairs: PairsFile, pairsPath: String, dataset: DatasetFile, corpus: ReportCorpus,
                                corpusPath: String, count: Int) throws -> [RetrievalExample] {
        guard pairs.imageCount == dataset.count else {
            throw ReportingError(path: pairsPath, "\(pairs.imageCount) images, but \(dataset.path) holds \(dataset.count); "
                                     + "pass the --data folder the pairs were made from")
        }
        guard pairs.reportCount == corpus.count else {
            throw ReportingError(path: pairsPath, "indexes \(pairs.reportCount) reports, but \(corpusPath) holds "
                                     + "\(corpus.count); pass the --reports corpus the pairs were made from")
        }
        let names = dataset.classNames
        func name(_ label: Int?) -> String? {
            guard let label else { return nil }
            return names.indices.contains(label) ? names[label] : String(label)
        }
        let labels = pairs.records.map { record -> (image: Int?, report: Int?) in
            (record.imageLabel ?? (dataset.isLabelled ? dataset.label(at: record.image) : nil),
             record.reportLabel ?? corpus.labels[record.report])
        }
        let matches = labels.map { pair -> Bool? in
            guard let image = pair.image, let report = pair.report else { return nil }
            return image == report
        }
        return try choose(count: count, matches: matches).map { i in
            let record = pairs.records[i]
            let thumbnail = try Thumbnail.png(dataset.imageBytes(at: i), height: dataset.height, width: dataset.width,
                                              channels: dataset.channels, source: dataset.path)
            let text = corpus.texts[record.report]
            return RetrievalExample(image: i, imageLabel: name(labels[i].image), report: record.report,
                                    reportID: corpus.ids[record.report], reportLabel: name(labels[i].report),
                                    score: record.score, reportExcerpt: excerpt(text), reportText: text,
                                    labelsMatch: matches[i], thumbnailPNG: thumbnail.png,
                                    thumbnailWidth: thumbnail.width, thumbnailHeight: thumbnail.height)
        }
    }
}

extension PairingGallery {
    /// The gallery of `pairing`'s `split`: its pairs file read and `count` examples
    /// chosen (`RetrievalGallery.examples`); nil when the pairing has no pairs file of
    /// that split.
    /// - Throws: `ReportingError` naming the pairs file when it cannot be read or does
    ///   not fit the dataset or the corpus.
    public static func read(_ pairing: PairingResult, split: String, dataset: DatasetFile, corpus: ReportCorpus,
                            corpusPath: String, count: Int) throws -> PairingGallery? {
        let path = pairing.pairsPath(split: split)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let pairs: PairsFile
        do {
            pairs = try PairsFile(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ReportingError(path: path, "\(error)")
        }
        let examples = try RetrievalGallery.examples(pairs: pairs, pairsPath: path, dataset: dataset, corpus: corpus,
                                                     corpusPath: corpusPath, count: count)
        return PairingGallery(pairing: pairing.name, split: split, imageCount: pairs.imageCount, examples: examples)
    }
}
