// Pathology-report-like texts for the synthetic benchmark: a header with "[Redacted]"
// markers, a specimen line, a final diagnosis naming the class and its latent subtype,
// class-specific findings with numbers, incidental findings (some naming other tissues,
// some negated), and occasional OCR-like garbage, so that report cleaning has work to do.
import Foundation
import Kernels

enum SyntheticReports {
    static func pick<T>(_ options: [T], _ g: inout RandomGenerator) -> T { options[g.nextInt(upperBound: options.count)] }

    static func decimal(_ low: Float, _ high: Float, _ g: inout RandomGenerator) -> String {
        let tenths = Int((g.uniform(low, high) * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    static let sites = ["sigmoid colon", "ascending colon", "descending colon", "transverse colon", "rectum", "caecum", "rectosigmoid junction"]
    static let garbage = ["#@!", "~~~", "c0l0n", "|||", "neg@tive", "^^%", "w}th", "tis$ue", "...", "=-=-"]

    /// One report for class `label` with subtype `subtype`.
    static func report(label: Int, subtype: Int, _ g: inout RandomGenerator) -> String {
        var parts: [String] = []
        // Header.
        if g.chance(0.6) { parts.append(pick(["SURGICAL PATHOLOGY REPORT", "**SURGICAL PATHOLOGY**", "Pathology Report", "FINAL REPORT"], &g)) }
        if g.chance(0.7) { parts.append("Patient: [Redacted] MRN: [Redacted]") }
        if g.chance(0.5) { parts.append("Accession: S\(10 + g.nextInt(upperBound: 15))-\(1000 + g.nextInt(upperBound: 9000)) Date: [Redacted]") }
        let site = pick(sites, &g)
        let procedure: String
        switch label {
        case 1: procedure = pick(["resection", "segmental resection", "biopsy", "hemicolectomy"], &g)
        case 3: procedure = pick(["resection, regional lymph nodes", "biopsy", "excision"], &g)
        default: procedure = pick(["biopsy", "endoscopic biopsy", "resection margin", "polypectomy"], &g)
        }
        parts.append("Specimen: \(site), \(procedure).")
        parts.append(pick(["FINAL DIAGNOSIS:", "DIAGNOSIS:", "Final diagnosis -", "__DIAGNOSIS__"], &g))
        parts.append(contentsOf: findings(label: label, subtype: subtype, &g))
        // Incidental notes; some mention other tissue types, some negated.
        let incidental = [
            "Sections examined: \(2 + g.nextInt(upperBound: 10)) blocks.",
            "Clinical history: \(pick(["screening colonoscopy", "iron deficiency anaemia", "change in bowel habit", "rectal bleeding", "abdominal pain"], &g)).",
            "Gross: received in formalin, \(decimal(0.3, 6, &g)) x \(decimal(0.2, 4, &g)) cm.",
            "H&E sections reviewed.",
            label == 1 ? "Background mucosa shows no dysplasia." : "No evidence of malignancy.",
            label == 3 ? "No metastatic carcinoma identified." : "Lymph nodes: \(g.nextInt(upperBound: 3) == 0 ? "not submitted" : "0/\(3 + g.nextInt(upperBound: 15)) involved").",
        ]
        for note in incidental where g.chance(0.35) { parts.append(note) }
        if g.chance(0.5) { parts.append("Pathologist: [Redacted], MD.") }
        // OCR damage.
        if g.chance(0.35) {
            for _ in 0..<(1 + g.nextInt(upperBound: 3)) {
                parts.insert(pick(garbage, &g), at: 1 + g.nextInt(upperBound: parts.count - 1))
            }
        }
        var text = parts.joined(separator: " ")
        if g.chance(0.2) { text = text.replacingFirst(" ,", ",").replacingFirst(". ", " .  ") }
        return text
    }

    static func findings(label: Int, subtype: Int, _ g: inout RandomGenerator) -> [String] {
        switch label {
        case 0:
            var out = [pick(["Benign colonic mucosa with preserved crypt architecture.",
                             "Colonic mucosa within normal limits.",
                             "Unremarkable large bowel mucosa with regular crypts and abundant goblet cells."], &g)]
            if subtype == 1 {
                out.append(pick(["Mild chronic inflammation of the lamina propria.",
                                 "Increased lamina propria plasma cells and lymphocytes; no cryptitis."], &g))
            }
            out.append(pick(["No dysplasia or malignancy identified.", "Negative for dysplasia.", "No adenomatous change."], &g))
            return out
        case 1:
            let grade: String
            switch subtype {
            case 0:
                grade = pick(["Well differentiated adenocarcinoma (G1) forming regular tubular glands with mild nuclear atypia.",
                              "Adenocarcinoma, well differentiated, low grade, with back-to-back glands and nuclear stratification."], &g)
            case 1:
                grade = pick(["Moderately differentiated adenocarcinoma (G2) with irregular and cribriform glands and dirty necrosis.",
                              "Invasive adenocarcinoma, moderately differentiated, with cribriform architecture and luminal necrosis."], &g)
            default:
                grade = pick(["Poorly differentiated adenocarcinoma (G3) growing in solid sheets with marked nuclear pleomorphism.",
                              "High grade adenocarcinoma, poorly differentiated, solid pattern, numerous mitoses."], &g)
            }
            let t = pick(["pT1", "pT2", "pT3", "pT3", "pT4a"], &g)
            let positive = g.nextInt(upperBound: 4), total = positive + 8 + g.nextInt(upperBound: 12)
            let n = positive == 0 ? "pN0" : (positive < 4 ? "pN1" : "pN2")
            var out = [grade, "Tumour size: \(decimal(1.2, 7.5, &g)) cm."]
            if g.chance(0.7) { out.append("Invasion into \(pick(["submucosa", "muscularis propria", "pericolic fat"], &g)) (\(t)).") }
            if g.chance(0.7) { out.append("Margins: \(pick(["clear", "negative"], &g)), closest \(1 + g.nextInt(upperBound: 40)) mm.") }
            if g.chance(0.6) { out.append("Regional lymph nodes: \(positive)/\(total) positive (\(n)).") }
            if g.chance(0.4) { out.append("Lymphovascular invasion: \(pick(["present", "not identified"], &g)).") }
            if g.chance(0.3) { out.append("MMR immunohistochemistry: MLH1, PMS2, MSH2 and MSH6 retained.") }
            return out
        case 2:
            if subtype == 0 {
                return [pick(["Dense fibrous stroma with scattered spindle cells.",
                              "Fibromuscular tissue with dense collagen and bland spindle cells."], &g),
                        pick(["No epithelium present.", "Negative for malignancy.", "No tumour cells identified."], &g)]
            }
            return [pick(["Loose oedematous stroma with wavy collagen fibres.",
                          "Oedematous stromal connective tissue with sparse spindle cells and clefts."], &g),
                    pick(["No epithelium present.", "Negative for malignancy."], &g)]
        default:
            if subtype == 0 {
                return [pick(["Lymphoid aggregate composed of small mature lymphocytes.",
                              "Dense lymphoid infiltrate of small round lymphocytes."], &g),
                        pick(["No atypical lymphoid population.", "Reactive lymphoid tissue."], &g)]
            }
            return [pick(["Lymph node with reactive follicular hyperplasia and prominent germinal centres.",
                          "Lymphoid follicles with germinal centres and tingible body macrophages."], &g),
                    "No metastatic carcinoma (0/\(1 + g.nextInt(upperBound: 20)))."]
        }
    }
}

extension String {
    /// `self` with the first occurrence of `target` replaced.
    func replacingFirst(_ target: String, _ replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
