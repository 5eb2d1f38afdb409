import Formats
import Foundation
import Model

/// What `clipit export` writes beside the PEFT adapters so that the model loads in
/// PyTorch without rebuilding anything by hand: the vision base model's timm
/// configuration and weights, `clipit_model.json` (classes, preprocessing, the heads'
/// structure) and `predict_example.py`, which reproduces clipit's image-only predictions
/// with timm, PEFT and the exported heads (docs/importing.md, "Exporting").
///
/// Supported: image-only inference of a timm-style vision tower (`naming: timm`, pooled CLS
/// or mean features, no projection or attentional pooler) with the heads of `unimodal`, `unimodal-lora` and the
/// CLIP-IT methods; other models get the adapters only, and the reason.
public enum ExportDescription {
    /// Writes `OUT/vision/config.json`, `OUT/vision/base_model.safetensors`,
    /// `OUT/clipit_model.json` and `OUT/predict_example.py`. Throws a `TrainingError`
    /// saying why when the model is not supported.
    public static func write(model: any TrainableModel, header: Checkpoint.Header, to out: String) throws {
        let config = header.config
        let vision = config.model.vision
        guard model.predictionInputs == .images else {
            throw TrainingError("a \(config.method) model reads paired reports at inference; no image-only example")
        }
        guard vision.naming == .timm, vision.projectionDim == nil, vision.qkvLayout == .fused, vision.finalNorm,
              !vision.preNorm, vision.patchBias, vision.layerNormEps == 1e-6, vision.pooling != .attentional else {
            throw TrainingError("the vision tower is not a plain timm ViT (naming \(vision.naming), projection "
                                + "\(vision.projectionDim.map(String.init) ?? "none"), pre-norm \(vision.preNorm)); "
                                + "no timm loading example")
        }
        let heads: [String: Any]
        if let clipit = model as? CLIPITModel {
            let h = clipit.heads.config
            heads = ["kind": "clipit", "fusion": h.fusion.rawValue, "two_layer_projection": h.twoLayerProjection,
                     "leaky_slope": Double(h.leakySlope)]
        } else if model is UnimodalModel {
            heads = ["kind": "linear"]
        } else {
            throw TrainingError("no image-only example for a \(config.method) model")
        }
        try OutputDirectory.create(out + "/vision")
        var weights = SafeTensorsWriter()
        for p in model.store.parameters where p.name.hasPrefix("vision.") && !p.name.contains(".lora_") {
            weights.add(String(p.name.dropFirst("vision.".count)), shape: p.shape, pointer: UnsafePointer(p.value),
                        count: p.count)
        }
        try weights.write(to: out + "/vision/base_model.safetensors")
        try AtomicFileWriter.writeJSONObject(timmConfig(vision, preprocessing: try preprocessing(config)), to: out + "/vision/config.json")
        try AtomicFileWriter.writeJSONObject(["format": "clipit-export", "version": 1, "method": config.method.description,
                       "classes": header.classNames, "preprocessing": try preprocessing(config), "heads": heads,
                       "step": header.state.step], to: out + "/clipit_model.json")
        try AtomicFileWriter.write(Array(predictExample.utf8), to: out + "/predict_example.py")
    }

    /// The checkpoint's evaluation transform. `resize_then_crop` (a pretrained tower's
    /// `data.preprocessing`): torchvision `Resize(resize_short_side)` → `CenterCrop(crop_size)`
    /// → `ToTensor` → `Normalize(mean, std)` on a PIL image. `crop_box` (clipit's own
    /// evaluation transform): the centre box of the image that `Resize` + `CenterCrop` would
    /// keep, resampled once to crop_size² (PIL `resize(box=…)`), then `ToTensor` → `Normalize`.
    static func preprocessing(_ config: TrainingConfig) throws -> [String: Any] {
        let size = config.model.vision.imageSize
        let p = config.data.preprocessing
        let n = try config.normalization()
        return ["mode": p == nil ? "crop_box" : "resize_then_crop",
                "resize_short_side": p?.resizeShortSide ?? size, "crop_size": p?.cropSize ?? size,
                "interpolation": (p?.filter ?? .bicubic).rawValue,
                "mean": n.mean.map(Double.init), "std": n.std.map(Double.init)]
    }

    /// A timm hub `config.json` building the tower with `timm.create_model(architecture,
    /// num_classes=0, **model_args)`.
    static func timmConfig(_ v: VisionConfig, preprocessing: [String: Any]) -> [String: Any] {
        var args: [String: Any] = [
            "img_size": v.imageSize, "patch_size": v.patchSize, "embed_dim": v.width, "depth": v.depth,
            "num_heads": v.heads, "mlp_ratio": Double(v.mlpHidden) / Double(v.width),
            "global_pool": v.pooling == .cls ? "token" : "avg", "class_token": true,
        ]
        if let scale = v.layerScaleInit { args["init_values"] = Double(scale) }
        if v.registerTokens > 0 { args["reg_tokens"] = v.registerTokens }
        if v.noEmbedClass { args["no_embed_class"] = true }
        switch v.activation {
        case .gelu: break
        case .geluTanh: args["act_layer"] = "gelu_tanh"
        case .quickGELU: args["act_layer"] = "quick_gelu"
        default: break
        }
        return ["architecture": "vit_base_patch16_224", "num_classes": 0, "global_pool": args["global_pool"]!,
                "model_args": args,
                "pretrained_cfg": ["input_size": [3, v.imageSize, v.imageSize], "mean": preprocessing["mean"]!,
                                   "std": preprocessing["std"]!, "interpolation": preprocessing["interpolation"]!]]
    }

    /// The example written as `predict_example.py`.
    static let predictExample = #"""
    """Predict with the model `clipit export` wrote into this folder: timm + PEFT + the heads.

        python predict_example.py IMAGE [IMAGE ...]

    Prints one JSON line per image: its predicted class and probabilities, as
    `clipit predict --images IMAGE` does. Needs torch, torchvision, timm, peft, safetensors
    and pillow. The folder holds vision/config.json (timm), vision/base_model.safetensors
    (the frozen base weights), vision/adapter_*.safetensors|json (the PEFT LoRA adapter, when
    the method trained one), heads.safetensors and clipit_model.json.
    """
    import json
    import math
    import os
    import sys

    import numpy as np
    import timm
    import torch
    from PIL import Image
    from safetensors.torch import load_file
    from torchvision import transforms

    HERE = os.path.dirname(os.path.abspath(__file__))
    spec = json.load(open(os.path.join(HERE, "clipit_model.json")))
    timm_config = json.load(open(os.path.join(HERE, "vision", "config.json")))

    model = timm.create_model(timm_config["architecture"], pretrained=False, num_classes=0,
                              **timm_config["model_args"])
    model.load_state_dict(load_file(os.path.join(HERE, "vision", "base_model.safetensors")))
    if os.path.exists(os.path.join(HERE, "vision", "adapter_config.json")):
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, os.path.join(HERE, "vision"))
    model.eval()

    heads = {k[len("heads."):]: v for k, v in load_file(os.path.join(HERE, "heads.safetensors")).items()}
    HEADS = spec["heads"]


    def linear(name, x):
        return x @ heads[name + ".weight"].T + heads[name + ".bias"]


    def leaky(x):
        return torch.nn.functional.leaky_relu(x, HEADS["leaky_slope"])


    def logits(v):
        """The heads on the pooled vision features v (B, E): clipit's inference."""
        if HEADS["kind"] == "linear" or HEADS["fusion"] == "visionOnly":
            return linear("vision_head", v)
        if HEADS["two_layer_projection"]:
            t = linear("projection.2", leaky(linear("projection.0", v)))
        else:
            t = linear("projection", v)
        if HEADS["fusion"] == "early":
            return linear("early_fusion", torch.cat([v, t], dim=1))
        text_branch = linear("text_head.2", leaky(linear("text_head.0", t)))
        return linear("fusion", torch.cat([linear("vision_head", v), text_branch], dim=1))


    p = spec["preprocessing"]
    FILTER = getattr(transforms.InterpolationMode, p["interpolation"].upper())


    def crop_box(image):
        """clipit's own evaluation transform: the centre box Resize + CenterCrop would keep,
        resampled once per channel in float (PIL mode "F" with a box, so no 8-bit rounding)."""
        w, h = image.size
        r, s = p["resize_short_side"], p["crop_size"]
        rh = r if h <= w else int(r * h / w)
        rw = r if w <= h else int(r * w / h)
        top, left = math.floor((rh - s) / 2 + 0.5), math.floor((rw - s) / 2 + 0.5)
        sy, sx = h / rh, w / rw
        box = (left * sx, top * sy, left * sx + s * sx, top * sy + s * sy)
        if (w, h) == (s, s):
            return transforms.ToTensor()(image)
        planes = [np.asarray(band.convert("F").resize((s, s), getattr(Image.Resampling, p["interpolation"].upper()),
                                                      box=box), dtype=np.float32) for band in image.split()]
        return torch.from_numpy(np.clip(np.stack(planes), 0, 255) / 255)


    def resize_then_crop(image):
        return transforms.ToTensor()(transforms.CenterCrop(p["crop_size"])(
            transforms.Resize(p["resize_short_side"], interpolation=FILTER)(image)))


    normalize = transforms.Normalize(p["mean"], p["std"])


    def preprocess(image):
        return normalize((crop_box if p["mode"] == "crop_box" else resize_then_crop)(image).float())

    with torch.no_grad():
        for path in sys.argv[1:]:
            x = preprocess(Image.open(path).convert("RGB")).unsqueeze(0)
            probabilities = torch.softmax(logits(model(x)).double(), dim=1)[0]
            k = int(probabilities.argmax())
            print(json.dumps({"id": os.path.basename(path), "prediction": k, "class": spec["classes"][k],
                              "probabilities": [round(float(q), 7) for q in probabilities]}))
    """#
}
