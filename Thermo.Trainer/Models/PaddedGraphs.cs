using Thermo.Trainer.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Thermo.Trainer.Models;

/// <summary>
/// Superpixel graphs of different sizes as one float tensor [G, N, 2 + D] (N the most nodes and D the
/// most neighbours of any graph packed), so that the trainer shuffles, slices, batches and moves graphs
/// exactly as it does images, and a batch is the same tensor operations whatever its graphs. Per node:
/// column 0 is 1 for a node and 0 for padding; column 1 its mean intensity (the networks' one input
/// feature, as in the paper's GCNConv(1, 32)); columns 2… the indices of its neighbours (exact in float32
/// below 2^24), then −1. Graphs are padded rather than joined block-diagonally because every model reads
/// one tensor per batch; the networks mask padding out of propagation, attention and pooling, so each
/// graph's output does not depend on what else is in its batch (a test checks it).
/// </summary>
public static class PaddedGraphs
{
    const int NodeColumn = 0, IntensityColumn = 1, NeighbourColumns = 2;

    /// <summary>Packs <paramref name="graphs"/> as [G, N, 2 + D] float32 (G ≥ 1).</summary>
    public static Tensor Pack(IReadOnlyList<SuperpixelGraph> graphs)
    {
        ArgumentNullException.ThrowIfNull(graphs);
        if (graphs.Count == 0) throw new ArgumentException("there are no graphs to pack");
        var neighbours = graphs.Select(Neighbours).ToArray();
        int nodes = graphs.Max(g => g.Nodes);
        int degree = Math.Max(1, neighbours.Max(n => n.Length == 0 ? 0 : n.Max(list => list.Count)));
        int width = NeighbourColumns + degree;
        var values = new float[(long)graphs.Count * nodes * width];
        for (int g = 0; g < graphs.Count; g++)
        {
            for (int i = 0; i < nodes; i++)
            {
                long row = ((long)g * nodes + i) * width;
                for (int k = 0; k < degree; k++) values[row + NeighbourColumns + k] = -1;
                if (i >= graphs[g].Nodes) continue;
                values[row + NodeColumn] = 1;
                values[row + IntensityColumn] = graphs[g].Intensity[i];
                for (int k = 0; k < neighbours[g][i].Count; k++) values[row + NeighbourColumns + k] = neighbours[g][i][k];
            }
        }
        return tensor(values, [graphs.Count, nodes, width]);
    }

    /// <summary>Each node's neighbours in increasing order (both ends of every edge).</summary>
    static List<int>[] Neighbours(SuperpixelGraph graph)
    {
        var lists = Enumerable.Range(0, graph.Nodes).Select(_ => new List<int>()).ToArray();
        for (int e = 0; e < graph.Edges; e++)
        {
            lists[graph.Sources[e]].Add(graph.Targets[e]);
            lists[graph.Targets[e]].Add(graph.Sources[e]);
        }
        foreach (var list in lists) list.Sort();
        return lists;
    }

    /// <summary>
    /// A packed batch as the networks use it: node features [B, N, 1], the 0/1 adjacency [B, N, N]
    /// (symmetric, no self-loops, none at padding) and the node indicator [B, N] (1 node, 0 padding),
    /// all in <paramref name="packed"/>'s element type and on its device.
    /// </summary>
    public static (Tensor Features, Tensor Adjacency, Tensor Nodes) Unpack(Tensor packed)
    {
        if (packed.dim() != 3 || packed.shape[2] < NeighbourColumns + 1)
            throw new ThermoException($"a batch of padded graphs is [graphs, nodes, {NeighbourColumns} + neighbours], got [{string.Join(", ", packed.shape)}]");
        using var scope = NewDisposeScope();
        long batch = packed.shape[0], nodes = packed.shape[1];
        var indicator = packed.select(2, NodeColumn);
        var features = packed.narrow(2, IntensityColumn, 1);
        var neighbours = packed.narrow(2, NeighbourColumns, packed.shape[2] - NeighbourColumns).to(ScalarType.Int64);
        // Absent neighbours (−1) are scattered into an extra column that is then cut off.
        var index = neighbours.masked_fill(neighbours.lt(0), nodes);
        var adjacency = zeros(batch, nodes, nodes + 1, dtype: packed.dtype, device: packed.device)
            .scatter_(2, index, ones(index.shape, dtype: packed.dtype, device: packed.device))
            .narrow(2, 0, nodes);
        return (features.MoveToOuterDisposeScope(), adjacency.MoveToOuterDisposeScope(), indicator.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// SLIC graphs of <paramref name="count"/> images of uniform noise drawn from <paramref name="seed"/>,
    /// with standard normal node intensities, packed: an input of the right form for checks and benchmarks
    /// whose figures are about arithmetic, not data. Intensities of both signs, as the image checks'
    /// normal pixels: with one input feature of one sign, GAT's first source-attention gradient is exactly
    /// zero in every head whose scores all share a sign (the softmax over a row then ignores the row's own
    /// term), and a float32 gradient against a zero reference is nothing but rounding.
    /// </summary>
    public static Tensor OfNoise(int count, int height, int width, int seed)
    {
        var random = new Random(seed);
        var pixels = new float[count * height * width];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = random.NextSingle();
        var split = new ImageSplit(pixels, new long[count], 1, height, width);
        var graphs = SuperpixelGraph.OfSplit(split, SlicParameters.Paper)
            .Select(g => g with { Intensity = g.Intensity.Select(_ => (float)random.NextGaussian()).ToArray() })
            .ToArray();
        return Pack(graphs);
    }

    /// <summary>A standard normal draw (Box–Muller).</summary>
    static double NextGaussian(this Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
