import Patchwork

/// Cuts a channels-last map [B, H, W, C] into ph×pw partitions for windowed attention, and
/// puts it back: Swin's and DAT's windows, MaxViT's windows and grids.
///
/// Partitions come row-major per image, each image's consecutive: [B·n, ph, pw, C] with
/// n = (H/ph)·(W/pw). A window holds adjacent tokens (`grid: false`, timm's window_partition);
/// a grid partition holds a ph×pw grid of tokens strided by (H/ph, W/pw) (`grid: true`,
/// timm's grid_partition). H and W must be multiples of ph and pw: the callers pad or check.
public enum WindowPartition {
    public static func split(_ x: Tensor, _ size: (Int, Int), grid: Bool = false) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (ph, pw) = size
        if grid {
            return x.reshaped([b, ph, h / ph, pw, w / pw, c]).permuted([0, 2, 4, 1, 3, 5]).reshaped([-1, ph, pw, c])
        }
        return x.reshaped([b, h / ph, ph, w / pw, pw, c]).permuted([0, 1, 3, 2, 4, 5]).reshaped([-1, ph, pw, c])
    }

    /// Inverse of `split`: [B·n, ph, pw, C] (or its tokens [B·n, ph·pw, C]) → [B, H, W, C].
    public static func merge(_ p: Tensor, _ size: (Int, Int), image: (Int, Int), grid: Bool = false) -> Tensor {
        let (h, w) = image, (ph, pw) = size, c = p.shape[p.rank - 1]
        if grid {
            return p.reshaped([-1, h / ph, w / pw, ph, pw, c]).permuted([0, 3, 1, 4, 2, 5]).reshaped([-1, h, w, c])
        }
        return p.reshaped([-1, h / ph, w / pw, ph, pw, c]).permuted([0, 1, 3, 2, 4, 5]).reshaped([-1, h, w, c])
    }

    /// Each partition's token centres as (y, x) image fractions, [B·n, ph·pw, 2] in the order
    /// `split` gives, for attention maps. A map rolled by −`shift` before the split (Swin's
    /// shifted windows) and padded to `image` from its true `size` (default: unpadded) puts
    /// every token back where it came from; padding tokens are NaN.
    public static func positions(batch: Int, image: (Int, Int), _ size: (Int, Int), grid: Bool = false,
                                 shift: (Int, Int) = (0, 0), unpadded: (Int, Int)? = nil) -> Tensor {
        let (ph, pw) = size
        let (nh, nw) = (image.0 / ph, image.1 / pw)
        let (h, w) = unpadded ?? image
        var one: [Float] = []
        one.reserveCapacity(nh * nw * ph * pw * 2)
        for a in 0..<nh { for b in 0..<nw { for i in 0..<ph { for j in 0..<pw {
            // window (a, b) holds rows a·ph + i; grid partition (a, b) holds rows i·nh + a.
            let y = grid ? i * nh + a : a * ph + i
            let x = grid ? j * nw + b : b * pw + j
            if y >= h || x >= w { one += [.nan, .nan]; continue }
            one.append((Float((y + shift.0) % h) + 0.5) / Float(h))
            one.append((Float((x + shift.1) % w) + 0.5) / Float(w))
        } } } }
        let single = Tensor(one, shape: [1, nh * nw, ph * pw, 2])
        return single.expanded(to: [batch, nh * nw, ph * pw, 2]).reshaped([batch * nh * nw, ph * pw, 2])
    }
}
