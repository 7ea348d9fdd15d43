import Tensor
import XCTest

/// Gradient checks of the layout ops. These are linear maps, so the checker's random cotangent
/// catches any element sent back to the wrong place; their forward values are in
/// `LayoutForwardTests`.
final class LayoutGradientCheckTests: XCTestCase {
    func testReshaped() {
        let x = randomTensor([2, 3, 4], seed: 301)
        assertGradientCheckPasses([x], "reshaped") { $0[0].reshaped([4, 6]).exp() }
        assertGradientCheckPasses([x], "reshaped with -1") { $0[0].reshaped([-1, 2]).exp() }
        // Reshaping a non-contiguous view copies.
        assertGradientCheckPasses([x], "reshaped transposed view") { $0[0].transposed().reshaped([2, 12]) }
    }

    func testPermutedAndTransposed() {
        let x = randomTensor([2, 3, 4], seed: 302)
        assertGradientCheckPasses([x], "permuted") { $0[0].permuted([2, 0, 1]) }
        assertGradientCheckPasses([x], "permuted twice") { $0[0].permuted([1, 2, 0]).permuted([2, 0, 1]).tanh() }
        assertGradientCheckPasses([x], "transposed last two") { $0[0].transposed() }
        assertGradientCheckPasses([x], "transposed axes 0 and 2") { $0[0].transposed(0, 2) }
    }

    func testSliced() {
        let x = randomTensor([3, 5, 2], seed: 303)
        assertGradientCheckPasses([x], "sliced middle axis") { $0[0].sliced(axis: 1, 1..<4) }
        assertGradientCheckPasses([x], "sliced first axis") { $0[0].sliced(axis: 0, 2..<3) }
        assertGradientCheckPasses([x], "sliced last axis, negative") { $0[0].sliced(axis: -1, 1..<2) }
        assertGradientCheckPasses([x], "slice of a slice") { $0[0].sliced(axis: 1, 1..<5).sliced(axis: 1, 0..<2) }
    }

    func testSplit() {
        let x = randomTensor([2, 6], seed: 304)
        // The middle piece is unused: its gradient must come back as zero.
        assertGradientCheckPasses([x], "split") {
            let pieces = $0[0].split(axis: 1, sizes: [1, 2, 3])
            return pieces[0] * pieces[2].sum(axis: 1, keepingDimension: true)
        }
        x.requiresGradient = true
        let pieces = x.split(axis: 1, sizes: [1, 2, 3])
        let gradient = gradients(of: (pieces[0] + pieces[2].sum(axis: 1, keepingDimension: true)).sum(), withRespectTo: [x])[0]
        XCTAssertEqual(gradient.doubles, [1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1])
    }

    func testConcatenate() {
        let a = randomTensor([2, 1, 3], seed: 305), b = randomTensor([2, 2, 3], seed: 306), c = randomTensor([2, 3], seed: 307)
        assertGradientCheckPasses([a, b], "concatenate middle axis") { Tensor.concatenate([$0[0], $0[1]], axis: 1) }
        assertGradientCheckPasses([a, b], "concatenate with a transposed view") {
            Tensor.concatenate([$0[1], $0[0].transposed(1, 2).transposed(1, 2)], axis: -2).squared()
        }
        assertGradientCheckPasses([c], "concatenate a tensor with itself") { Tensor.concatenate([$0[0], $0[0].exp()], axis: 0) }
        assertGradientCheckPasses([a, b], "concatenate last axis of views") {
            Tensor.concatenate([$0[0].reshaped([2, 3]), $0[1].sliced(axis: 1, 1..<2).reshaped([2, 3])], axis: 1)
        }
    }

    func testExpanded() {
        let x = randomTensor([3, 1, 2], seed: 308)
        assertGradientCheckPasses([x], "expanded with new leading axis") { $0[0].expanded(to: [2, 3, 4, 2]) }
        // (3, 1) → (2, 3, 4): summed back over the first and the last axis.
        let column = randomTensor([3, 1], seed: 314)
        assertGradientCheckPasses([column], "expanded over first and last axes") { $0[0].expanded(to: [2, 3, 4]) }
        let scalar = Tensor(shape: [], values: [0.3])
        assertGradientCheckPasses([scalar], "expanded scalar") { $0[0].expanded(to: [2, 2]) }
    }

    func testUnsqueezedAndSqueezed() {
        let x = randomTensor([2, 3], seed: 309)
        assertGradientCheckPasses([x], "unsqueezed") { $0[0].unsqueezed(1).expanded(to: [2, 4, 3]) }
        assertGradientCheckPasses([x], "unsqueezed at end") { $0[0].unsqueezed(-1) * $0[0].unsqueezed(0).reshaped([2, 3, 1]) }
        let y = randomTensor([2, 1, 3], seed: 310)
        assertGradientCheckPasses([y], "squeezed") { $0[0].squeezed(1).transposed() }
    }

    func testContiguous() {
        let x = randomTensor([3, 4], seed: 311)
        assertGradientCheckPasses([x], "contiguous of transposed view") { $0[0].transposed().contiguous() }
        assertGradientCheckPasses([x], "contiguous of permuted 3-D view") {
            $0[0].reshaped([3, 2, 2]).permuted([2, 0, 1]).contiguous().exp()
        }
    }

    func testGathered() {
        let x = randomTensor([2, 3, 4], seed: 312)
        // Repeated indices across rows; each row picks one element.
        let indices = [0, 3, 3, 1, 2, 0]
        assertGradientCheckPasses([x], "gathered") { $0[0].gathered(indices) }
        assertGradientCheckPasses([x], "gathered from transposed view") { $0[0].transposed().gathered([0, 2, 1, 2, 1, 0, 0, 1]) }
    }

    func testEmbedding() {
        // Table (V=5, C=3); ids repeat (1 three times, 3 twice), so the backward must add, not
        // overwrite. Rows 2 and 4 are never read.
        let table = randomTensor([5, 3], seed: 313)
        let ids = [1, 3, 1, 0, 1, 3]
        assertGradientCheckPasses([table], "embedding") { $0[0].embedding(ids, shape: [2, 3]).tanh() }

        table.requiresGradient = true
        let gradient = gradients(of: table.embedding(ids, shape: [2, 3]).sum(), withRespectTo: [table])[0]
        XCTAssertEqual(gradient.doubles, [1, 1, 1, 3, 3, 3, 0, 0, 0, 2, 2, 2, 0, 0, 0], "each row's gradient counts its reads")
    }
}
