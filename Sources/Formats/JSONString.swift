/// A JSON string literal for `value` (RFC 8259 §7): quotes, backslashes and control
/// characters escaped (`\n`, `\r`, `\t`, otherwise `\u00XX` in lowercase hex), every other
/// scalar copied as UTF-8. Deterministic, unlike Foundation's encoder, so the headers of
/// safetensors, dataset and corpus files written from the same input are byte-identical.
public func jsonString(_ value: String) -> String {
    var out = "\""
    for scalar in value.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
