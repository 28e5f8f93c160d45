"""Draw docs/angles.png: the sign of each angle, with the same drawing code as the Space."""

from pathlib import Path

import cv2
import numpy as np

from fsanet.pipeline.drawing import draw_axis, draw_cube, draw_text_box, label_size

PANELS = (("at rest", 0, 0, 0), ("yaw +40", 40, 0, 0), ("pitch +30", 0, 30, 0), ("roll +30", 0, 0, 30))


def main() -> None:
    tiles = []
    for title, yaw, pitch, roll in PANELS:
        tile = np.full((260, 260, 3), 245, np.uint8)
        draw_cube(tile, yaw, pitch, roll, (130, 140), 110)
        draw_axis(tile, yaw, pitch, roll, (130, 140), 90)
        width, height = label_size(title, 0.6)
        draw_text_box(tile, title, (8, 8, 8 + width, 8 + height), 0.6)
        tiles.append(tile)
    figure = np.concatenate(tiles, axis=1)
    path = Path(__file__).with_name("angles.png")
    cv2.imwrite(str(path), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR))
    print(path)


if __name__ == "__main__":
    main()
