import ArgumentParser

@main
struct CLIPIT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clipit",
        abstract: "CLIP-IT distillation training for histology on CPU clusters.",
        version: ClipitVersion.text,
        subcommands: [Synth.self, Bench.self, Smoke.self, Pretrain.self, Pair.self, Train.self, Eval.self, Predict.self, Embed.self, ImportCommand.self, ExportCommand.self, Report.self])
}
