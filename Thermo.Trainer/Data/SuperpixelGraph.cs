namespace Thermo.Trainer.Data;

/// <summary>
/// One image as a graph of its superpixels. Node i is segment i of <see cref="Slic.Segment"/>: its mean
/// <see cref="Intensity"/> and its centroid (<see cref="X"/>, <see cref="Y"/>), the mean pixel centre in a
/// unit square ((column + ½) / width, (row + ½) / height, so within [0, 1]). Edges join segments that
/// touch: two segments are adjacent when a pixel of one and a pixel of the other share a side or a
/// corner (8-neighbourhood) — the region adjacency graph of the superpixels, as in Avelar et al.,
/// whose GAT the graph-network paper's follows (that paper says only that its graphs have 75 superpixel
/// nodes). The 8-neighbourhood is scikit-image's default for such graphs, and joins a grid-like cell to
/// its diagonal neighbours too, as the tiling's 8 nearest tiles do. Each undirected edge is listed once,
/// <c>Sources[e] &lt; Targets[e]</c>, sorted.
/// </summary>
public sealed record SuperpixelGraph(float[] Intensity, float[] X, float[] Y, int[] Sources, int[] Targets)
{
    public int Nodes => Intensity.Length;
    public int Edges => Sources.Length;

    /// <summary>The graph of <paramref name="image"/>'s SLIC superpixels.</summary>
    public static SuperpixelGraph Of(float[] image, int width, int height, SlicParameters parameters) =>
        FromSegments(image, Slic.Segment(image, width, height, parameters), width, height);

    /// <summary>The graph of a segmentation: <paramref name="labels"/> one per pixel, contiguous 0…n−1.</summary>
    public static SuperpixelGraph FromSegments(float[] image, int[] labels, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(labels);
        if (image.Length != width * height || labels.Length != image.Length)
            throw new ArgumentException($"a {width}×{height} image needs {width * height} pixels and labels, got {image.Length} and {labels.Length}");
        int nodes = labels.Length == 0 ? 0 : labels.Max() + 1;
        var sum = new double[nodes];
        var sumX = new double[nodes];
        var sumY = new double[nodes];
        var count = new int[nodes];
        var pairs = new SortedSet<(int, int)>();
        for (int p = 0; p < labels.Length; p++)
        {
            int label = labels[p], x = p % width, y = p / width;
            if (label < 0) throw new ArgumentException($"label {label} at pixel ({x}, {y}) is negative");
            sum[label] += image[p];
            sumX[label] += x + 0.5;
            sumY[label] += y + 0.5;
            count[label]++;
            // Right, lower-left, below and lower-right: with the pixels before p, every touching pair once.
            void Touch(int q)
            {
                if (labels[q] != label) pairs.Add((Math.Min(label, labels[q]), Math.Max(label, labels[q])));
            }
            if (x < width - 1) Touch(p + 1);
            if (y < height - 1)
            {
                if (x > 0) Touch(p + width - 1);
                Touch(p + width);
                if (x < width - 1) Touch(p + width + 1);
            }
        }
        if (Array.IndexOf(count, 0) is var missing and >= 0) throw new ArgumentException($"labels are not contiguous: {missing} is missing below {nodes - 1}");
        return new SuperpixelGraph(
            Enumerable.Range(0, nodes).Select(i => (float)(sum[i] / count[i])).ToArray(),
            Enumerable.Range(0, nodes).Select(i => (float)(sumX[i] / count[i] / width)).ToArray(),
            Enumerable.Range(0, nodes).Select(i => (float)(sumY[i] / count[i] / height)).ToArray(),
            pairs.Select(e => e.Item1).ToArray(), pairs.Select(e => e.Item2).ToArray());
    }

    /// <summary>Graphs of every image of a single-channel split, computed in parallel (each image's
    /// graph depends on that image alone, so the result is the same on any number of cores).</summary>
    public static SuperpixelGraph[] OfSplit(ImageSplit split, SlicParameters parameters)
    {
        if (split.Channels != 1) throw new ArgumentException($"SLIC superpixels here are of single-channel images; these have {split.Channels} channels");
        var graphs = new SuperpixelGraph[split.Count];
        int size = split.PixelsPerImage;
        Parallel.For(0, split.Count, i => graphs[i] = Of(split.Pixels[(i * size)..((i + 1) * size)], split.Width, split.Height, parameters));
        return graphs;
    }

    /// <summary>Equal node features and edges (records compare arrays by reference).</summary>
    public bool SameAs(SuperpixelGraph other) =>
        Intensity.AsSpan().SequenceEqual(other.Intensity) && X.AsSpan().SequenceEqual(other.X) && Y.AsSpan().SequenceEqual(other.Y) &&
        Sources.AsSpan().SequenceEqual(other.Sources) && Targets.AsSpan().SequenceEqual(other.Targets);
}
