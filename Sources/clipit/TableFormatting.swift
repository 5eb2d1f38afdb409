/// Column padding for the benchmark tables.

/// `s` left-aligned in a column of `width` characters (one space after it when it is wider).
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}

/// `s` right-aligned in a column of `width` characters (one space before it when it is wider).
func lpad(_ s: String, _ width: Int) -> String {
    s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
}
