import DataParallel
import Datasets
import Distributed
import Foundation
import Model
import Retrieval

/// Which items fill each global batch: `batch_size` labelled items in the shuffled order of
/// their epoch (through `items`, a fold teacher's subset), then, with an unlabelled pool,
/// `unlabeled_batch_size` unlabelled items (item ids after the labelled ones) drawn in
/// order from the pool's own reshuffled epochs. Every rank computes the same lists, so
/// a rank's rows and micro-batches (`ShardedSampler` over the combined rows) and the
/// contrastive term's whole-batch targets need no communication.
struct GlobalBatches {
    let labelled: ShardedSampler
    let items: [Int]?
    let labelledItemCount: Int
    let unlabeled: ShardedSampler?
    let unlabeledBatchSize: Int
    let stepsPerEpoch: Int
    private var labelledOrder: (epoch: Int, order: [Int]) = (-1, [])
    private var unlabeledOrder: (epoch: Int, order: [Int]) = (-1, [])
    private var buffer: [Int] = []

    /// `labelled` orders the labelled items (positions into `items` when given); the pool's
    /// order is seeded by `seed`, independent of the labelled one.
    init(labelled: ShardedSampler, items: [Int]?, unlabeledCount: Int, unlabeledBatchSize: Int, labelledItemCount: Int,
         stepsPerEpoch: Int, seed: UInt64) {
        self.labelled = labelled
        self.items = items
        self.labelledItemCount = labelledItemCount
        self.unlabeledBatchSize = unlabeledCount > 0 ? unlabeledBatchSize : 0
        self.stepsPerEpoch = stepsPerEpoch
        unlabeled = unlabeledCount > 0 && unlabeledBatchSize > 0
            ? ShardedSampler.training(itemCount: unlabeledCount, globalBatchSize: 1, rank: 0, worldSize: 1, seed: seed)
            : nil
        buffer.reserveCapacity(labelled.globalBatchSize + self.unlabeledBatchSize)
    }

    /// The items of global batch `batch` of `epoch`, in row order.
    mutating func items(epoch: Int, batch: Int) -> ArraySlice<Int> {
        if labelledOrder.epoch != epoch { labelledOrder = (epoch, labelled.globalOrder(epoch: epoch)) }
        buffer.removeAll(keepingCapacity: true)
        let start = batch * labelled.globalBatchSize
        for position in labelledOrder.order[start ..< start + labelled.globalBatchCount(batch)] {
            buffer.append(items.map { $0[position] } ?? position)
        }
        if let unlabeled {
            // The pool is read as one endless stream of its epochs: draw p of step s is
            // p = s·U + r, in pool epoch p / count.
            let count = unlabeled.itemCount
            let first = (epoch * stepsPerEpoch + batch) * unlabeledBatchSize
            for p in first ..< first + unlabeledBatchSize {
                let poolEpoch = p / count
                if unlabeledOrder.epoch != poolEpoch { unlabeledOrder = (poolEpoch, unlabeled.globalOrder(epoch: poolEpoch)) }
                buffer.append(labelledItemCount + unlabeledOrder.order[p % count])
            }
        }
        return buffer[...]
    }
}

extension TrainingData {
    /// Prepares what the distillation terms beyond the reference read (CLIP-IT.md
    /// decisions 8–10): the unlabelled pool and its paired reports, the teachers' logits
    /// (`distill.teacher`), the retriever's image embeddings as targets
    /// (`distill.target: retriever-image`) and the whole-batch targets of the contrastive
    /// term. Every rank calls it.
    func attachDistillationInputs(to assembler: BatchAssembler, model: any TrainableModel,
                                  comm: any Communicator) throws {
        let d = config.distill
        var unlabeledFile: DatasetFile?
        if !config.data.unlabeled.isEmpty {
            let pool = try DatasetFile(path: config.data.unlabeled)
            guard !pool.isLabelled else {
                throw TrainingError("data.unlabeled '\(pool.path)' holds labelled images: the unlabelled pool is a dataset "
                                    + "written without labels (clipit synth --unlabeled N, or an unlabelled import)")
            }
            guard pool.height == train.height, pool.width == train.width, pool.channels == train.channels else {
                throw TrainingError("data.unlabeled '\(pool.path)' has \(pool.height)×\(pool.width)×\(pool.channels) images, "
                                    + "'\(train.path)' \(train.height)×\(train.width)×\(train.channels): use images of one size")
            }
            unlabeledFile = pool
            assembler.unlabeled = pool
            if let text = assembler.text {
                let poolText = try text.paired(withPairsFile: config.data.unlabeledPairs, imageCount: pool.count)
                assembler.text = text.paired(with: text.reportOfImage + poolText.reportOfImage)
            }
        }
        let items = assembler.itemCount
        if d.kdWeight > 0 {
            let teacher = try TeacherLogits(path: d.teacher)
            try teacher.check(trainPath: train.path, trainCount: train.count, unlabeledCount: unlabeledFile?.count ?? 0,
                              classes: classNames)
            assembler.teacherLogits = (teacher.logits + teacher.unlabeledLogits, teacher.classes)
        }
        if d.target == .retrieverImage {
            let pipeline = try PairingPipeline(retrieverPath: d.retriever, comm: comm)
            guard pipeline.encoder.embeddingDim == model.textEmbeddingWidth else {
                throw TrainingError("distill.retriever '\(d.retriever)' embeds into \(pipeline.encoder.embeddingDim) dimensions, "
                                    + "the model's projection t̂ has \(model.textEmbeddingWidth): use the retriever whose text "
                                    + "tower initialises the model (model.init_text)")
            }
            var table = try comm.allgatherv(pipeline.embedImages(train).embeddings).values
            if let unlabeledFile { table += try comm.allgatherv(pipeline.embedImages(unlabeledFile).embeddings).values }
            // Each image is its own target row (and its own positive in the contrastive term).
            let tokens = assembler.text?.tokens ?? [0], length = assembler.text?.contextLength ?? 1
            assembler.text = PairedText(tokens: tokens, contextLength: length, reportOfImage: Array(0 ..< items))
            assembler.reportEmbeddings = (table, pipeline.encoder.embeddingDim)
        }
        assembler.carriesBatchTargets = d.contrastiveWeight > 0
    }
}
