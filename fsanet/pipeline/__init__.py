"""From a photo or video to poses: batched estimation over detected faces, smoothing, drawing."""
