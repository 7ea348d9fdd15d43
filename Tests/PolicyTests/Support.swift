import Foundation
import Policy
import Tensor
import XCTest

/// `../shared/fixtures/llama-tiny` beside the repository (CI clones with shared/ beside it), or
/// `ARPO_FIXTURES/llama-tiny` when that variable is set.
func llamaTinyFixture() throws -> URL {
    if let root = ProcessInfo.processInfo.environment["ARPO_FIXTURES"] {
        return URL(fileURLWithPath: root).appendingPathComponent("llama-tiny")
    }
    // Committed beside this file; scripts/make_llama_tiny_fixture.py regenerates it.
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/llama-tiny")
}

/// A tiny configuration for fast tests.
func tinyConfiguration(valueHead: Bool = false, tied: Bool = true, keyValueHeads: Int? = nil) -> LlamaConfiguration {
    LlamaConfiguration(hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4, keyValueHeadCount: keyValueHeads, maxPositions: 32, tieWordEmbeddings: tied, valueHead: valueHead)
}

/// A temporary directory removed when the test ends.
func temporaryDirectory(_ testCase: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("arpo-policy-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Largest |a − b| over two equal-length arrays.
func maxAbsoluteDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "compared arrays differ in length: \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
}
