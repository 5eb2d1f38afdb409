import Foundation
import Import
import Model
import Retrieval

// MARK: - Pretrained model folders as towers

extension TrainingConfig {
    /// The configuration a run uses: pretrained model folders resolved
    /// (`resolvingPretrainedFolders`) and validated. When resuming at `step`, a stop point at
    /// or before it is spent, so the effective (saved) configuration is that of an
    /// uninterrupted run.
    public func effective(resumingAt step: Int? = nil) throws -> TrainingConfig {
        var config = try resolvingPretrainedFolders()
        try config.validate()
        if let step, config.train.stopAfterSteps <= step { config.train.stopAfterSteps = 0 }
        return config
    }

    /// The configuration with the towers of pretrained model folders in place:
    ///
    /// - `model.init_vision` = a timm / transformers CLIP / open_clip folder: `model.vision`
    ///   becomes the folder's image tower without its projection (the backbone's pooled
    ///   features, what timm returns), and `data.preprocessing`, when unset, the folder's
    ///   evaluation preprocessing (resize, crop, filter, mean, std).
    /// - `model.init_text` = a transformers CLIP / open_clip folder: `model.text` becomes the
    ///   folder's text tower (with its projection) and `data.tokenizer` `clip`, the folder's
    ///   CLIP BPE tokenizer.
    ///
    /// Files (retriever exports, `writeInternalWeights` outputs) leave the configuration as
    /// it is. Applying it twice gives the same configuration.
    public func resolvingPretrainedFolders() throws -> TrainingConfig {
        var c = self
        if isModelFolder(model.initVision) {
            let folder = try PretrainedModel(directory: model.initVision)
            guard var vision = folder.vision else {
                throw TrainingError("model.init_vision '\(model.initVision)' is a \(folder.family.rawValue) folder "
                                    + "without an image tower")
            }
            vision.projectionDim = nil
            c.model.vision = vision
            if c.data.preprocessing == nil { c.data.preprocessing = folder.preprocessing }
        }
        if isModelFolder(model.initText) {
            let folder = try PretrainedModel(directory: model.initText)
            guard let text = folder.text else {
                throw TrainingError("model.init_text '\(model.initText)' is a \(folder.family.rawValue) folder without "
                                    + "a text tower (timm folders are image-only; use a transformers CLIP or open_clip folder)")
            }
            c.model.text = text
            c.data.tokenizer = .clip
        }
        return c
    }
}

/// Loads the `prefix` tower (`vision.` or `text.`) of `store` from the model folder
/// `directory` through the folder's weight mapping. LoRA factors keep their initial
/// values; a tower whose shapes differ from the folder's is one error listing every
/// mismatch.
func loadPretrainedFolder(_ directory: String, prefix: String, into store: ParameterStore) throws {
    let folder = try PretrainedModel(directory: directory)
    try folder.importWeights(into: store, vision: prefix == "vision.", text: prefix == "text.")
}
