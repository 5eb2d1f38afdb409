// TensorBoard's `Event` protobuf (tensorboard/compat/proto/event.proto, summary.proto),
// encoded and decoded by hand: the fields this project writes (file version, scalars,
// images). Fields go out in field-number order with proto3's rule that a zero scalar
// outside a `oneof` is not written, which is how protobuf itself serialises them, so an
// event encodes to the same bytes as TensorBoard's own writer makes
// (`FormatsTests.TensorBoardEventTests` checks it against a file TensorBoard wrote).
//
//     Event         wall_time 1 (double), step 2 (int64),
//                   oneof { file_version 3 (string), summary 5 (Summary) }
//     Summary       value 1 (repeated Summary.Value)
//     Summary.Value tag 1 (string), oneof { simple_value 2 (float), image 4 (Summary.Image) }
//     Summary.Image height 1, width 2, colorspace 3 (int32), encoded_image_string 4 (bytes)

/// One TensorBoard event: when, at which step, and what.
public struct TensorBoardEvent: Equatable, Sendable {
    public enum Payload: Equatable, Sendable {
        /// The first event of every file: "brain.Event:2".
        case fileVersion(String)
        /// Tagged values logged at `step`.
        case summary([TensorBoardValue])
        /// A kind this reader does not decode (graph, session log, run metadata, …).
        case other
    }

    /// Seconds since the Unix epoch.
    public var wallTime: Double
    public var step: Int
    public var payload: Payload

    /// An event at `step`, logged at `wallTime` (Unix seconds).
    public init(wallTime: Double, step: Int, payload: Payload) {
        self.wallTime = wallTime
        self.step = step
        self.payload = payload
    }

    /// The version string TensorBoard expects in the first event of a file.
    public static let fileVersion = "brain.Event:2"

    /// The summary's values; empty for other payloads.
    public var values: [TensorBoardValue] {
        if case .summary(let values) = payload { return values }
        return []
    }
}

/// One tagged value of a summary: a scalar or an image.
public struct TensorBoardValue: Equatable, Sendable {
    public enum Content: Equatable, Sendable {
        case scalar(Float)
        case image(TensorBoardImage)
        /// A kind this reader does not decode (histogram, tensor, audio, …).
        case other
    }

    /// The chart's name, e.g. "train/loss"; a "/" groups charts in TensorBoard.
    public var tag: String
    public var content: Content

    /// A value tagged `tag`.
    public init(tag: String, content: Content) {
        self.tag = tag
        self.content = content
    }

    /// A scalar (`simple_value`) tagged `tag`.
    public static func scalar(_ tag: String, _ value: Float) -> TensorBoardValue { .init(tag: tag, content: .scalar(value)) }

    /// The scalar, or nil for another kind of value.
    public var scalar: Float? {
        if case .scalar(let value) = content { return value }
        return nil
    }

    /// The image, or nil for another kind of value.
    public var image: TensorBoardImage? {
        if case .image(let image) = content { return image }
        return nil
    }
}

/// An encoded image of a summary (`Summary.Image`).
public struct TensorBoardImage: Equatable, Sendable {
    public var height: Int
    public var width: Int
    /// 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
    public var colorspace: Int
    /// The PNG (or JPEG) file's bytes.
    public var encoded: [UInt8]

    /// An image of `height` × `width` pixels whose file bytes are `encoded`.
    public init(height: Int, width: Int, colorspace: Int, encoded: [UInt8]) {
        self.height = height
        self.width = width
        self.colorspace = colorspace
        self.encoded = encoded
    }
}

// MARK: - Encoding

extension TensorBoardEvent {
    /// The `Event` protobuf's bytes.
    public func encoded() -> [UInt8] {
        var event = ProtobufEncoder()
        if wallTime.bitPattern != 0 { event.appendDouble(1, wallTime) }
        if step != 0 { event.appendInteger(2, Int64(step)) }
        switch payload {
        case .fileVersion(let version): event.appendLengthDelimited(3, Array(version.utf8))
        case .summary(let values):
            var summary = ProtobufEncoder()
            for value in values { summary.appendLengthDelimited(1, value.encoded()) }
            event.appendLengthDelimited(5, summary.bytes)
        case .other: preconditionFailure("TensorBoardEvent: an event of another kind cannot be encoded")
        }
        return event.bytes
    }
}

extension TensorBoardValue {
    func encoded() -> [UInt8] {
        var value = ProtobufEncoder()
        if !tag.isEmpty { value.appendLengthDelimited(1, Array(tag.utf8)) }
        switch content {
        case .scalar(let scalar): value.appendFloat(2, scalar)
        case .image(let image):
            var encoder = ProtobufEncoder()
            if image.height != 0 { encoder.appendInteger(1, Int64(image.height)) }
            if image.width != 0 { encoder.appendInteger(2, Int64(image.width)) }
            if image.colorspace != 0 { encoder.appendInteger(3, Int64(image.colorspace)) }
            if !image.encoded.isEmpty { encoder.appendLengthDelimited(4, image.encoded) }
            value.appendLengthDelimited(4, encoder.bytes)
        case .other: preconditionFailure("TensorBoardValue: a value of another kind cannot be encoded")
        }
        return value.bytes
    }
}

// MARK: - Decoding

extension TensorBoardEvent {
    /// Decodes an `Event` protobuf; fields it does not know are skipped, as protobuf does.
    init(decoding bytes: ArraySlice<UInt8>) throws {
        var decoder = ProtobufDecoder(bytes)
        (wallTime, step, payload) = (0, 0, .other)
        while let (field, value) = try decoder.next() {
            switch (field, value) {
            case (1, .fixed64(let bits)): wallTime = Double(bitPattern: bits)
            case (2, .varint(let raw)): step = Int(Int64(bitPattern: raw))
            case (3, .lengthDelimited(let text)): payload = .fileVersion(String(decoding: text, as: UTF8.self))
            case (5, .lengthDelimited(let message)):
                var summary = ProtobufDecoder(message), values: [TensorBoardValue] = []
                while let (field, value) = try summary.next() {
                    if field == 1, case .lengthDelimited(let entry) = value {
                        values.append(try TensorBoardValue(decoding: entry))
                    } else if field == 1 {
                        throw ProtobufDecodeError("Summary.value is not length-delimited")
                    }
                }
                payload = .summary(values)
            case (1...3, _), (5, _): throw ProtobufDecodeError("Event field \(field) has the wrong wire type")
            case (4...9, _): payload = .other   // the other members of Event's oneof
            default: break
            }
        }
    }
}

extension TensorBoardValue {
    init(decoding bytes: ArraySlice<UInt8>) throws {
        var decoder = ProtobufDecoder(bytes)
        (tag, content) = ("", .other)
        while let (field, value) = try decoder.next() {
            switch (field, value) {
            case (1, .lengthDelimited(let text)): tag = String(decoding: text, as: UTF8.self)
            case (2, .fixed32(let bits)): content = .scalar(Float(bitPattern: bits))
            case (4, .lengthDelimited(let message)): content = .image(try TensorBoardImage(decoding: message))
            case (1, _), (2, _), (4, _): throw ProtobufDecodeError("Summary.Value field \(field) has the wrong wire type")
            case (3, _), (5, _), (6, _), (8, _): content = .other   // histograms, audio, tensors
            default: break
            }
        }
    }
}

extension TensorBoardImage {
    init(decoding bytes: ArraySlice<UInt8>) throws {
        var decoder = ProtobufDecoder(bytes)
        (height, width, colorspace, encoded) = (0, 0, 0, [])
        while let (field, value) = try decoder.next() {
            switch (field, value) {
            case (1, .varint(let v)): height = Int(Int32(truncatingIfNeeded: v))
            case (2, .varint(let v)): width = Int(Int32(truncatingIfNeeded: v))
            case (3, .varint(let v)): colorspace = Int(Int32(truncatingIfNeeded: v))
            case (4, .lengthDelimited(let data)): encoded = Array(data)
            case (1...4, _): throw ProtobufDecodeError("Summary.Image field \(field) has the wrong wire type")
            default: break
            }
        }
    }
}
