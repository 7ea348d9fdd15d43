import Policy
import Tensor

extension ReinforcementLearner {
    /// One forward pass of the update: trajectories packed several to a row, each computed as if
    /// alone (`TokenBatch(packing:padding:)`: its own positions, attention blind to every other
    /// sequence), and the trajectories of one prompt group sharing their common prefixes: a
    /// group's prompt, and an ARPO fork's tokens up to its fork point, are computed once per
    /// row. The pass computes little padding and no prefix twice, where one trajectory per row
    /// padded to the longest computed every row to it and every prefix in every trajectory.
    struct PackedPass {
        /// Indices into the rollout batch's records, in the order of the pass's loss rows.
        let records: [Int]
        /// The packed tokens, (rows, longest row).
        let batch: TokenBatch
        /// Per entry of `records`, where each of its tokens is in `batch`, as flat (row-major)
        /// indices of its (rows, longest row) positions.
        let locations: [[Int]]

        /// Positions the pass computes, padding included.
        var positions: Int { batch.batchSize * batch.length }
        /// Tokens of the trajectories' sequences that the pass does not compute, because an
        /// earlier sequence of the row holds them.
        var sharedTokens: Int { locations.reduce(0) { $0 + $1.count } - batch.lengths.reduce(0, +) }
    }

    /// Prefixes shorter than this are not shared: sharing s tokens computes s − 1 fewer.
    static let shortestSharedPrefix = 2

    /// The records `indices` as forward passes of at most `microBatchSize` trajectories each.
    ///
    /// Each prompt group's records of `indices` (in index order, `microBatchSize` at a time) form
    /// a unit in which every record shares its longest common prefix with an earlier one
    /// (`sharedPrefixUnit`). The units are packed first-fit decreasing by the tokens they compute
    /// into rows of the context length (`SupervisedTrainer.packedRows`, as the cold start packs
    /// demonstrations; a unit longer than that takes a row of its own, each of its sequences
    /// within the context), and the rows, in the order they were opened, gathered into passes.
    ///
    /// The losses are sums over trajectories with one normaliser per mini-batch, so how the
    /// trajectories are grouped and shared changes no value beyond rounding; the layout depends
    /// only on `indices` and the records' tokens, never on the thread count.
    func packedPasses(_ indices: [Int], records: [TrajectoryRecord]) -> [PackedPass] {
        let limit = configuration.microBatchSize
        var groups: [Int: [Int]] = [:]
        for index in indices { groups[records[index].groupIndex, default: []].append(index) }
        let units = groups.keys.sorted().flatMap { group -> [[PackedSequenceOfRecord]] in
            let members = groups[group]!.sorted()
            return stride(from: 0, to: members.count, by: limit).map { sharedPrefixUnit(Array(members[$0..<Swift.min($0 + limit, members.count)]), records: records) }
        }
        return packedPasses(units: units, records: records)
    }

    /// `units` (each at most `microBatchSize` sequences, sharing prefixes within the unit)
    /// packed first-fit decreasing into rows of the context length and gathered into passes of
    /// at most `microBatchSize` trajectories; a unit is never split.
    func packedPasses(units: [[PackedSequenceOfRecord]], records: [TrajectoryRecord]) -> [PackedPass] {
        let limit = configuration.microBatchSize
        let computed = units.map { unit in unit.reduce(0) { $0 + $1.sequence.tokens.count - Swift.max($1.sequence.sharedLength - 1, 0) } }
        let rows = SupervisedTrainer.packedRows(lengths: computed, rowLength: model.configuration.maxPositions)
        // Per pass, its rows, each a list of units; a packed row is split where a pass fills up.
        var passes: [[[Int]]] = []
        var (trajectoriesInPass, rowOfLastEntry) = (0, -1)
        for (rowIndex, row) in rows.enumerated() {
            for unit in row {
                if passes.isEmpty || trajectoriesInPass + units[unit].count > limit {
                    passes.append([])
                    (trajectoriesInPass, rowOfLastEntry) = (0, -1)
                }
                if rowOfLastEntry != rowIndex {
                    passes[passes.count - 1].append([])
                    rowOfLastEntry = rowIndex
                }
                passes[passes.count - 1][passes[passes.count - 1].count - 1].append(unit)
                trajectoriesInPass += units[unit].count
            }
        }
        return passes.map { pass in packedPass(pass.map { $0.map { units[$0] } }) }
    }

    /// A record's sequence with the earlier sequence of its unit it shares a prefix with.
    struct PackedSequenceOfRecord {
        let record: Int
        /// `host` counts within the unit.
        let sequence: PackedSequence
    }

    /// `members`' sequences in order, each sharing with the earlier member that has the longest
    /// common prefix with it (the first of equals; none under `shortestSharedPrefix`): a group's
    /// prompt, or an ARPO fork's tokens up to its fork point (its parent's, identical).
    func sharedPrefixUnit(_ members: [Int], records: [TrajectoryRecord]) -> [PackedSequenceOfRecord] {
        let sequences = members.map { records[$0].promptTokens + records[$0].responseTokens }
        return members.indices.map { position in
            var best: (host: Int, length: Int)?
            for earlier in 0..<position {
                let common = zip(sequences[position], sequences[earlier]).prefix { $0 == $1 }.count
                if common >= ReinforcementLearner.shortestSharedPrefix && common > (best?.length ?? 0) { best = (earlier, common) }
            }
            return PackedSequenceOfRecord(
                record: members[position], sequence: PackedSequence(tokens: sequences[position], host: best?.host, sharedLength: best?.length ?? 0))
        }
    }

    /// A pass of `rows`, each a list of units' sequences (whose hosts count within their unit).
    func packedPass(_ rows: [[[PackedSequenceOfRecord]]]) -> PackedPass {
        let rowSequences = rows.map { units in
            var sequences: [PackedSequence] = []
            for unit in units {
                let unitStart = sequences.count
                for entry in unit {
                    var sequence = entry.sequence
                    sequence.host = sequence.host.map { unitStart + $0 }
                    sequences.append(sequence)
                }
            }
            return sequences
        }
        let batch = TokenBatch(packing: rowSequences, padding: padding)
        var locations: [[Int]] = []
        for (row, sequences) in rowSequences.enumerated() {
            for sequence in sequences.indices { locations.append(batch.locations(row: row, sequence: sequence).map { row * batch.length + $0 }) }
        }
        return PackedPass(records: rows.flatMap { $0.flatMap { $0.map(\.record) } }, batch: batch, locations: locations)
    }

    /// Per-position statistics of `pass` gathered at its trajectories' response tokens: row r,
    /// column t reads the location of the r-th trajectory's token promptLength + t − 1 (the
    /// distribution that produced response token t). `perPosition` is (rows, width): log-probs
    /// (width longest row − 1, whose entry at a location predicts the trajectory's next token,
    /// `TokenBatch.locations`) or entropies and values (width longest row). Columns past a
    /// trajectory's response read its first location (finite, and masked by every caller).
    /// (trajectories, `length`).
    func responseAligned(_ perPosition: Tensor, pass: PackedPass, records: [TrajectoryRecord], length: Int) -> Tensor {
        let width = perPosition.shape[1]
        let count = pass.records.count
        var indices = [Int](repeating: 0, count: count * length)
        for (row, (index, locations)) in zip(pass.records, pass.locations).enumerated() {
            let prompt = records[index].promptTokens.count
            for t in 0..<length {
                // Flat (rows, longest row) index → the same position of a (rows, width) tensor.
                let location = locations[t < records[index].responseTokens.count ? prompt + t - 1 : 0]
                indices[row * length + t] = location / pass.batch.length * width + location % pass.batch.length
            }
        }
        return perPosition.reshaped([perPosition.shape[0] * width, 1]).embedding(indices, shape: [count, length]).reshaped([count, length])
    }
}
