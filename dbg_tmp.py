import numpy as np, cv2, datasets, tempfile
from leaderboard.importers import aflw2000_rows, prepare_aflw2000
from pathlib import Path
rows = list(aflw2000_rows(Path('../shared/data/aflw2000-sample16')))
r = rows[0]
print(r['image'].shape, r['box'], r['face_box'], r['origin'], r['frame_size'])
d = tempfile.mkdtemp()
p = prepare_aflw2000(Path('../shared/data/aflw2000-sample16'), Path(d)/'a')
ds = datasets.load_from_disk(str(p))
img = ds[0]['image']; print(type(img), img.format, img.mode)
a = np.asarray(img.convert('RGB')); print(np.abs(a.astype(int)-r['image']).max())
print(ds.features)
