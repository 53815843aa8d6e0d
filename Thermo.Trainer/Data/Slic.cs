namespace Thermo.Trainer.Data;

/// <summary>
/// What SLIC is asked for: about <see cref="Segments"/> superpixels, the weight
/// <see cref="Compactness"/> of distance in the plane against distance in intensity, and the number
/// of k-means <see cref="Iterations"/>.
/// </summary>
public sealed record SlicParameters(int Segments, double Compactness, int Iterations)
{
    /// <summary>The graph-network paper's data: MNIST as graphs of 75 superpixels (Monti et al.'s MNIST
    /// Superpixels; the paper gives no other parameter). Compactness 0.25 on intensities in [0, 1]: a pixel
    /// one grid step S from a centre costs as much as an intensity difference of 0.25, so a segment stops at
    /// an edge of that contrast or more (a stroke's edge on MNIST is about 1) unless the other side's own
    /// centre is more than S away, while flat background stays in compact, grid-like cells. 10 iterations,
    /// as Achanta et al. found enough.</summary>
    public static readonly SlicParameters Paper = new(75, 0.25, 10);

    /// <summary>Checks the ranges (fixed in code, not user settings: a broken precondition).</summary>
    public void Validate()
    {
        if (Segments < 1) throw new ArgumentOutOfRangeException(nameof(Segments), Segments, "SLIC needs at least 1 segment");
        if (!(Compactness >= 0) || double.IsInfinity(Compactness)) throw new ArgumentOutOfRangeException(nameof(Compactness), Compactness, "SLIC's compactness must be finite and non-negative");
        if (Iterations < 1) throw new ArgumentOutOfRangeException(nameof(Iterations), Iterations, "SLIC needs at least 1 iteration");
    }
}

/// <summary>
/// SLIC superpixels (Achanta et al., "SLIC Superpixels Compared to State-of-the-Art Superpixel Methods",
/// IEEE TPAMI 2012) of a single-channel image: k-means over the pixels in (intensity, x, y).
/// <list type="number">
/// <item>Seeds on a regular grid of about <c>segments</c> cells (columns ≈ √(segments·W/H), rows ≈
/// segments / columns), each moved to the lowest intensity gradient of its 3×3 neighbourhood so that
/// no seed sits on an edge. S = √(W·H / seeds) is the grid step.</item>
/// <item>Each iteration assigns every pixel within S of a centre (a 2S×2S window) to the centre of least
/// D² = (I − I_k)² + (m / S)²·((x − x_k)² + (y − y_k)²), m the compactness, then moves each centre to
/// the mean of its pixels. A pixel no window reaches keeps its last centre (at first, its grid cell's).</item>
/// <item>Connectivity is enforced: every 4-connected piece of a cluster becomes a segment of its own,
/// and a segment smaller than half the mean seed cell (skimage's <c>min_size_factor</c> 0.5) is merged
/// into the adjacent segment whose mean intensity is nearest, until none is that small (or one segment
/// is left). Merging two 4-connected, 4-adjacent pieces leaves one 4-connected segment.</item>
/// <item>Segments are numbered 0…n−1 in raster order of their first pixel.</item>
/// </list>
/// Pure and deterministic: ties go to the lower centre or segment index.
/// </summary>
public static class Slic
{
    /// <summary>
    /// Labels of the superpixels of <paramref name="image"/> (row-major, <paramref name="width"/> ×
    /// <paramref name="height"/>, one intensity per pixel): one label per pixel, contiguous 0…n−1, each
    /// segment 4-connected. Time O(iterations · W·H) for the k-means (each pixel lies in a bounded number of
    /// windows), plus O(W·H + s²) for the connectivity step over its s pieces.
    /// </summary>
    public static int[] Segment(float[] image, int width, int height, SlicParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(parameters);
        if (width < 1 || height < 1) throw new ArgumentException($"an image needs a positive size, got {width}×{height}");
        if (image.Length != width * height) throw new ArgumentException($"a {width}×{height} image has {width * height} pixels, got {image.Length}");
        parameters.Validate();
        var (clusters, seeds) = Cluster(image, width, height, parameters);
        return EnforceConnectivity(image, width, height, clusters, seeds);
    }

    /// <summary>The k-means step: a cluster index per pixel (clusters may be empty or disconnected) and the number of seeds.</summary>
    static (int[] Clusters, int Seeds) Cluster(float[] image, int width, int height, SlicParameters parameters)
    {
        int pixels = width * height;
        int columns = Math.Clamp((int)Math.Round(Math.Sqrt(parameters.Segments * (double)width / height)), 1, width);
        int rows = Math.Clamp((int)Math.Round(parameters.Segments / (double)columns), 1, height);
        int seeds = rows * columns;
        double step = Math.Sqrt((double)pixels / seeds);
        double spatialWeight = parameters.Compactness * parameters.Compactness / (step * step);

        var labels = new int[pixels];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                labels[y * width + x] = y * rows / height * columns + x * columns / width;

        var ci = new double[seeds];
        var cx = new double[seeds];
        var cy = new double[seeds];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
            {
                int k = r * columns + c;
                var (x, y) = LowestGradientNear(image, width, height, (int)((c + 0.5) * width / columns), (int)((r + 0.5) * height / rows));
                (ci[k], cx[k], cy[k]) = (image[y * width + x], x, y);
            }

        var distance = new double[pixels];
        var sumI = new double[seeds];
        var sumX = new double[seeds];
        var sumY = new double[seeds];
        var count = new int[seeds];
        for (int iteration = 0; iteration < parameters.Iterations; iteration++)
        {
            Array.Fill(distance, double.PositiveInfinity);
            for (int k = 0; k < seeds; k++)
            {
                int x0 = Math.Max(0, (int)Math.Ceiling(cx[k] - step)), x1 = Math.Min(width - 1, (int)Math.Floor(cx[k] + step));
                int y0 = Math.Max(0, (int)Math.Ceiling(cy[k] - step)), y1 = Math.Min(height - 1, (int)Math.Floor(cy[k] + step));
                for (int y = y0; y <= y1; y++)
                    for (int x = x0; x <= x1; x++)
                    {
                        int p = y * width + x;
                        double di = image[p] - ci[k], dx = x - cx[k], dy = y - cy[k];
                        double d = di * di + spatialWeight * (dx * dx + dy * dy);
                        if (d < distance[p]) (distance[p], labels[p]) = (d, k);
                    }
            }
            Array.Clear(sumI);
            Array.Clear(sumX);
            Array.Clear(sumY);
            Array.Clear(count);
            for (int p = 0; p < pixels; p++)
            {
                int k = labels[p];
                sumI[k] += image[p];
                sumX[k] += p % width;
                sumY[k] += p / width;
                count[k]++;
            }
            for (int k = 0; k < seeds; k++)
                if (count[k] > 0) (ci[k], cx[k], cy[k]) = (sumI[k] / count[k], sumX[k] / count[k], sumY[k] / count[k]);
        }
        return (labels, seeds);
    }

    /// <summary>The pixel of least squared central-difference gradient in the 3×3 neighbourhood of (x, y);
    /// (x, y) itself unless another is strictly lower.</summary>
    static (int X, int Y) LowestGradientNear(float[] image, int width, int height, int x, int y)
    {
        double Gradient(int px, int py)
        {
            float At(int qx, int qy) => image[Math.Clamp(qy, 0, height - 1) * width + Math.Clamp(qx, 0, width - 1)];
            double gx = At(px + 1, py) - At(px - 1, py), gy = At(px, py + 1) - At(px, py - 1);
            return gx * gx + gy * gy;
        }
        var best = (X: x, Y: y);
        double lowest = Gradient(x, y);
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++)
            {
                int px = x + dx, py = y + dy;
                if (px < 0 || px >= width || py < 0 || py >= height) continue;
                double g = Gradient(px, py);
                if (g < lowest) (lowest, best) = (g, (px, py));
            }
        return best;
    }

    /// <summary>4-connected pieces of the clusters, the small ones merged into their nearest-intensity
    /// neighbour, relabelled 0…n−1 in raster order.</summary>
    static int[] EnforceConnectivity(float[] image, int width, int height, int[] clusters, int seeds)
    {
        int pixels = width * height;
        var piece = new int[pixels];
        Array.Fill(piece, -1);
        var size = new List<int>();
        var sum = new List<double>();
        var stack = new Stack<int>();
        for (int start = 0; start < pixels; start++)
        {
            if (piece[start] >= 0) continue;
            int id = size.Count;
            int members = 0;
            double total = 0;
            piece[start] = id;
            stack.Push(start);
            while (stack.Count > 0)
            {
                int p = stack.Pop();
                members++;
                total += image[p];
                int x = p % width, y = p / width;
                void Visit(int q)
                {
                    if (piece[q] < 0 && clusters[q] == clusters[p]) { piece[q] = id; stack.Push(q); }
                }
                if (x > 0) Visit(p - 1);
                if (x < width - 1) Visit(p + 1);
                if (y > 0) Visit(p - width);
                if (y < height - 1) Visit(p + width);
            }
            size.Add(members);
            sum.Add(total);
        }

        int pieces = size.Count;
        var neighbours = Enumerable.Range(0, pieces).Select(_ => new HashSet<int>()).ToArray();
        for (int p = 0; p < pixels; p++)
        {
            int x = p % width;
            if (x < width - 1 && piece[p + 1] != piece[p]) { neighbours[piece[p]].Add(piece[p + 1]); neighbours[piece[p + 1]].Add(piece[p]); }
            if (p + width < pixels && piece[p + width] != piece[p]) { neighbours[piece[p]].Add(piece[p + width]); neighbours[piece[p + width]].Add(piece[p]); }
        }

        // Union-find over the pieces; a root carries its merged segment's size, intensity sum and neighbours.
        var parent = Enumerable.Range(0, pieces).ToArray();
        int Root(int i)
        {
            while (parent[i] != i) i = parent[i] = parent[parent[i]];
            return i;
        }
        int minimum = Math.Max(1, (int)(0.5 * pixels / seeds));
        bool merged;
        do
        {
            merged = false;
            for (int r = 0; r < pieces; r++)
            {
                if (parent[r] != r || size[r] >= minimum) continue;
                int best = -1;
                double nearest = double.PositiveInfinity, mean = sum[r] / size[r];
                foreach (int t in neighbours[r].Select(Root).Where(t => t != r).Distinct().Order())
                {
                    double gap = Math.Abs(sum[t] / size[t] - mean);
                    if (gap < nearest) (nearest, best) = (gap, t);
                }
                if (best < 0) continue;
                parent[r] = best;
                size[best] += size[r];
                sum[best] += sum[r];
                neighbours[best].UnionWith(neighbours[r]);
                merged = true;
            }
        } while (merged);

        var labels = new int[pixels];
        var number = new Dictionary<int, int>();
        for (int p = 0; p < pixels; p++)
        {
            int root = Root(piece[p]);
            if (!number.TryGetValue(root, out int label)) number[root] = label = number.Count;
            labels[p] = label;
        }
        return labels;
    }
}
